"""Allotment's domain: the pure rules. No I/O, no SQL, no clock: time and data are arguments.

The credit engine lives in `time`, `periods`, `usage_periods`, `grants`, `burn`, `access`,
`history` and `snapshots`; `README.md` states every rule with a worked example.
"""
