"""Throughput of crmkit.normalize on a bulk import's worth of emails and phones.

Run: ``python benchmarks/bench_normalize.py [N]`` (N defaults to 100,000 per kind).

Prints records per second for normalizing N distinct emails and N distinct phone numbers
written in several countries' formats, through ``Normalizer`` as a repository does:

- *cold*: every value is new, so the per-value caches never hit (a bulk import); email
  domains repeat, as they do in real data, and their check is cached;
- *baseline*: the bare library call crmkit builds on (email-validator without DNS,
  phonenumbers parse + E.164 format) on the same values, measured in the same run;
- *hot*: the last 10,000 values again, now answered from the bounded caches (re-saving
  contacts that were just written).

It never asserts a time. It also prints what importing the module itself costs (its own
line of ``python -X importtime``; byte-compiling included when no .pyc is cached).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from crmkit import normalize
from crmkit.normalize import Normalizer

FIRST = ["Ada", "José", "Zoë", "Björk", "Li", "Олег", "Amélie", "Søren", "Priya", "Kwame"]
LAST = ["Lovelace", "García", "O'Neil", "van der Berg", "Nguyễn", "Müller", "Tanaka", "Smith"]
DOMAINS = [
    "Example.COM",
    "acme.co.uk",
    "gmail.com",
    "outlook.com",
    "sub.firma.de",
    "münchen.de",
    "empresa.com.br",
    "yahoo.co.jp",
    "xn--bcher-kva.de",
]


def make_emails(n: int) -> list[str]:
    """N distinct addresses in the shapes an export contains (case, spaces, tags, dots)."""
    emails = []
    for i in range(n):
        first = FIRST[i % len(FIRST)].lower()
        last = LAST[(i // len(FIRST)) % len(LAST)].replace(" ", "").replace("'", "")
        domain = DOMAINS[i % len(DOMAINS)]
        shape = i % 5
        if shape == 0:
            emails.append(f"{first}.{last}{i}@{domain}")
        elif shape == 1:
            emails.append(f"  {first.upper()}.{last}{i}@{domain.upper()} ")
        elif shape == 2:
            emails.append(f"{first}+crm{i}@{domain}.")
        elif shape == 3:
            emails.append(f"mailto:{first}_{last}-{i}@{domain}")
        else:
            emails.append(f"{first[0]}{last}{i}@{domain}")
    return emails


def make_phones(n: int) -> list[tuple[str, str]]:
    """N distinct (phone, country) pairs, national and international forms of 8 countries."""
    phones = []
    for i in range(n):
        k = i // 8
        hi, lo = k // 10_000, k % 10_000
        form = i % 8
        if form == 0:
            value, country = f"({212 + hi}) 555-{lo:04d}", "US"
        elif form == 1:
            value, country = f"+44 20 {7000 + hi:04d} {lo:04d}", "GB"
        elif form == 2:
            value, country = f"030 {1_000_000 + k:07d}", "DE"
        elif form == 3:
            d = f"{k:08d}"
            value, country = f"06 {d[0:2]} {d[2:4]} {d[4:6]} {d[6:8]}", "FR"
        elif form == 4:
            value, country = f"+91 98{k:08d}", "IN"
        elif form == 5:
            value, country = f"090-{1000 + hi:04d}-{lo:04d}", "JP"
        elif form == 6:
            value, country = f"+55 (11) 9{1000 + hi:04d}-{lo:04d}", "BR"
        else:
            value, country = f"0412 {k:06d}", "AU"
        if i % 10 == 9:
            value += f" ext. {i % 1000}"
        phones.append((value, country))
    return phones


def rate(func: Callable[[], int]) -> tuple[float, float]:
    """Run ``func`` (which returns how many records it handled); records/s and seconds."""
    start = time.perf_counter()
    count = func()
    seconds = time.perf_counter() - start
    return count / seconds, seconds


def clear_caches() -> None:
    for name in dir(normalize):
        cache_clear = getattr(getattr(normalize, name), "cache_clear", None)
        if callable(cache_clear):
            cache_clear()


def bench_emails(values: Sequence[str], normalizer: Normalizer) -> list[tuple[str, ...]]:
    from email_validator import validate_email

    def crmkit_cold() -> int:
        for v in values:
            normalizer.email(v)
        return len(values)

    def crmkit_hot() -> int:
        for v in values[-10_000:]:
            normalizer.email(v)
        return min(len(values), 10_000)

    stripped = [v.strip().removeprefix("mailto:").rstrip(".") for v in values]

    def baseline() -> int:
        for v in stripped:
            validate_email(v, check_deliverability=False).normalized.lower()
        return len(stripped)

    return measure("email", len(values), crmkit_cold, baseline, crmkit_hot)


def bench_phones(
    values: Sequence[tuple[str, str]], normalizer: Normalizer
) -> list[tuple[str, ...]]:
    import phonenumbers

    def crmkit_cold() -> int:
        for v, country in values:
            normalizer.phone(v, country=country)
        return len(values)

    def crmkit_hot() -> int:
        for v, country in values[-10_000:]:
            normalizer.phone(v, country=country)
        return min(len(values), 10_000)

    def baseline() -> int:
        e164 = phonenumbers.PhoneNumberFormat.E164
        for v, country in values:
            number = phonenumbers.parse(v, country)
            phonenumbers.is_possible_number_with_reason(number)
            phonenumbers.format_number(number, e164)
        return len(values)

    return measure("phone", len(values), crmkit_cold, baseline, crmkit_hot)


def measure(
    kind: str,
    n: int,
    cold: Callable[[], int],
    baseline: Callable[[], int],
    hot: Callable[[], int],
) -> list[tuple[str, ...]]:
    clear_caches()
    cold_rate, cold_s = rate(cold)
    base_rate, _ = rate(baseline)
    hot_rate, _ = rate(hot)
    return [
        (
            kind,
            f"{n:,}",
            f"{cold_rate:,.0f}",
            f"{cold_s:.2f}",
            f"{base_rate:,.0f}",
            f"{cold_rate / base_rate:.2f}",
            f"{hot_rate:,.0f}",
        )
    ]


def import_cost() -> float:
    """Milliseconds spent in crmkit.normalize's own module body, per -X importtime."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import crmkit.normalize"],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in out.stderr.splitlines():
        fields = [field.strip() for field in line.removeprefix("import time:").split("|")]
        if len(fields) == 3 and fields[2] == "crmkit.normalize":
            return int(fields[0]) / 1000
    return float("nan")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    emails = make_emails(n)
    phones = make_phones(n)
    assert len(set(emails)) == n, "generated emails must be distinct"
    assert len(set(phones)) == n, "generated phones must be distinct"
    normalizer = Normalizer("US")
    # Load the libraries and their data once (phone metadata, country index) before
    # timing, so that "cold" measures unique values, not one-time start-up.
    normalizer.email("warm.up@example.com")
    for region in ("US", "GB", "DE", "FR", "IN", "JP", "BR", "AU"):
        normalizer.phone("+12025550123", country=region)

    rows = [("kind", "records", "cold rec/s", "cold s", "baseline rec/s", "ratio", "hot rec/s")]
    rows += bench_emails(emails, normalizer)
    rows += bench_phones(phones, normalizer)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for j, row in enumerate(rows):
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
        if j == 0:
            print("  ".join("-" * w for w in widths))
    print()
    print("ratio = crmkit cold / bare library call on the same values (1.00 = no overhead)")
    print(f"import crmkit.normalize itself: {import_cost():.1f} ms (libraries load on first use)")


if __name__ == "__main__":
    main()
