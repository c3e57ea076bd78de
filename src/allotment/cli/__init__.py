"""The `allotment` command line: a thin client of the services."""
