"""Chunk ids are UUIDv7 (RFC 9562): a UUID any reader takes, that starts with the time it was
made, so that the ids one process makes come in order and a batch's chunks sit side by side in
every index of them."""

from __future__ import annotations

import time
import uuid

from chunksync.ids import ordered_id, uuid_text


def test_an_ordered_id_is_a_version_7_uuid_with_the_time_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    made = ordered_id()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(made)
    assert str(parsed) == made  # stored in the 8-4-4-4-12 form, lower case
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert before <= parsed.int >> 80 <= after  # its first 48 bits: Unix milliseconds


def test_the_ids_a_process_makes_come_in_order_and_differ() -> None:
    made = [ordered_id() for _ in range(20_000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    # 62 random bits each: two made in the same tick still differ there.
    assert len({uuid.UUID(m).int & ((1 << 62) - 1) for m in made}) == len(made)


def test_uuid_text_is_the_stored_form_of_32_digits() -> None:
    digits = uuid.uuid4().hex
    assert uuid_text(digits) == str(uuid.UUID(hex=digits))
