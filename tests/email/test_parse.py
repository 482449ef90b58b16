"""Reading single messages (no storage): the corpus files, headers, bodies, quotes,
signatures, attachments, automatic messages and rejections.

The corpus lives in ``crmkit.testing.email_corpus`` (every backend ingests it in the
conformance suite) and as ``.eml`` files next to this test; regenerate the files with
``python tests/email/test_parse.py``.
"""

from __future__ import annotations

import email.message
import email.policy
from pathlib import Path

import pytest

from crmkit.email import MessageError, parse_message
from crmkit.email.parse import base_subject, message_ids, split_reply
from crmkit.testing.email_corpus import CORPUS, EXPECTED

CORPUS_DIR = Path(__file__).parent / "corpus"


def write_corpus() -> None:
    """Write every corpus message to ``corpus/<name>.eml``."""
    CORPUS_DIR.mkdir(exist_ok=True)
    for name, raw in CORPUS.items():
        (CORPUS_DIR / f"{name}.eml").write_bytes(raw)


def test_corpus_files_are_the_generated_corpus() -> None:
    """The .eml files are exactly the generated corpus (at least 30 messages)."""
    files = sorted(CORPUS_DIR.glob("*.eml"))
    assert len(files) == len(CORPUS) >= 30
    assert set(EXPECTED) == set(CORPUS)
    for path in files:
        assert path.read_bytes() == CORPUS[path.stem], path.name


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_message_reads_as_expected(name: str) -> None:
    """Each file parses (or is rejected with its reason) as the corpus expects."""
    raw = (CORPUS_DIR / f"{name}.eml").read_bytes()
    expected = EXPECTED[name]
    if expected.get("status") == "rejected":
        with pytest.raises(MessageError) as info:
            parse_message(raw)
        assert expected["reason"] in info.value.reason
        return
    parsed = parse_message(raw)
    assert parsed.sent_at.tzinfo is not None
    if "subject" in expected:
        assert parsed.subject == expected["subject"]
    if "body" in expected:
        assert parsed.body == expected["body"]
    if "automatic" in expected:
        assert parsed.automatic == expected["automatic"]
    else:
        assert parsed.automatic is None


def test_str_bytes_and_email_message_give_the_same_result() -> None:
    """Text, bytes and an EmailMessage of one message read alike."""
    raw = CORPUS["m07_latin1"]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    a, b = parse_message(raw), parse_message(message)
    assert (a.key, a.subject, a.body) == (b.key, b.subject, b.body)
    text = parse_message(CORPUS["m01_support_request"].decode("utf-8"))
    assert text.key == "m01@customer.example"


def test_missing_message_id_is_keyed_by_content_hash() -> None:
    """Without a Message-ID the key is a hash of the bytes: same bytes, same key."""
    raw = CORPUS["m12_missing_message_id"]
    assert parse_message(raw).key == parse_message(bytes(raw)).key
    assert parse_message(raw).key.startswith("sha256:")
    assert parse_message(raw + b"x").key != parse_message(raw).key


@pytest.mark.parametrize("value", [b"", b"   \r\n", 42])
def test_unreadable_input_is_rejected(value: object) -> None:
    """Empty input and non-messages raise MessageError with a reason."""
    with pytest.raises(MessageError):
        parse_message(value)  # type: ignore[arg-type]


def test_split_reply_and_signature() -> None:
    """Attribution + quoted lines and the "-- " signature are kept apart from the body."""
    body, quoted, signature = split_reply(
        "Thanks!\n\nOn Tue, Bob wrote:\n> old\n> text\n\n-- \nAda\n+44 1234\n"
    )
    assert body == "Thanks!"
    assert quoted == "On Tue, Bob wrote:\n> old\n> text"
    assert signature == "Ada\n+44 1234"
    assert split_reply("On the way, I wrote: hi") == ("On the way, I wrote: hi", None, None)


def test_subject_and_message_id_helpers() -> None:
    """Reply prefixes in several languages are dropped; References tokens are read."""
    assert base_subject("Re: AW: Fwd:  Hello   world") == "hello world"
    assert base_subject("SV[2]: re: x") == "x"
    assert message_ids("<a@x> <b@y>\n <a@x>") == ("a@x", "b@y")


if __name__ == "__main__":
    write_corpus()
