"""The currencies `GET /api/v1/info/currencies` lists: ISO 4217 code, name, symbol, and the
number of decimal places of its minor unit (`subunits`). Customers' `currency` is checked
against the three-letter pattern only (custom codes are allowed, as in OpenMeter), so this list
informs; it does not restrict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Currency:
    code: str
    name: str
    symbol: str
    subunits: int


CURRENCIES: Final = tuple(
    Currency(code, name, symbol, subunits)
    for code, name, symbol, subunits in (
        ("AED", "UAE Dirham", "د.إ", 2),
        ("ARS", "Argentine Peso", "$", 2),
        ("AUD", "Australian Dollar", "A$", 2),
        ("BGN", "Bulgarian Lev", "лв", 2),
        ("BHD", "Bahraini Dinar", ".د.ب", 3),
        ("BRL", "Brazilian Real", "R$", 2),
        ("CAD", "Canadian Dollar", "CA$", 2),
        ("CHF", "Swiss Franc", "CHF", 2),
        ("CLP", "Chilean Peso", "$", 0),
        ("CNY", "Chinese Yuan", "¥", 2),
        ("COP", "Colombian Peso", "$", 2),
        ("CZK", "Czech Koruna", "Kč", 2),
        ("DKK", "Danish Krone", "kr", 2),
        ("EGP", "Egyptian Pound", "E£", 2),
        ("EUR", "Euro", "€", 2),
        ("GBP", "British Pound", "£", 2),
        ("HKD", "Hong Kong Dollar", "HK$", 2),
        ("HUF", "Hungarian Forint", "Ft", 2),
        ("IDR", "Indonesian Rupiah", "Rp", 2),
        ("ILS", "Israeli New Shekel", "₪", 2),
        ("INR", "Indian Rupee", "₹", 2),
        ("ISK", "Icelandic Króna", "kr", 0),
        ("JPY", "Japanese Yen", "¥", 0),
        ("KRW", "South Korean Won", "₩", 0),
        ("KWD", "Kuwaiti Dinar", "د.ك", 3),
        ("MXN", "Mexican Peso", "$", 2),
        ("MYR", "Malaysian Ringgit", "RM", 2),
        ("NGN", "Nigerian Naira", "₦", 2),
        ("NOK", "Norwegian Krone", "kr", 2),
        ("NZD", "New Zealand Dollar", "NZ$", 2),
        ("PHP", "Philippine Peso", "₱", 2),
        ("PLN", "Polish Złoty", "zł", 2),
        ("RON", "Romanian Leu", "lei", 2),
        ("SAR", "Saudi Riyal", "﷼", 2),
        ("SEK", "Swedish Krona", "kr", 2),
        ("SGD", "Singapore Dollar", "S$", 2),
        ("THB", "Thai Baht", "฿", 2),
        ("TRY", "Turkish Lira", "₺", 2),
        ("TWD", "New Taiwan Dollar", "NT$", 2),
        ("UAH", "Ukrainian Hryvnia", "₴", 2),
        ("USD", "US Dollar", "$", 2),
        ("VND", "Vietnamese Đồng", "₫", 0),
        ("ZAR", "South African Rand", "R", 2),
    )
)
