"""Event ids as the store orders them."""

from __future__ import annotations

from shared.ids import event_order


def test_event_ids_order_as_the_store_orders_them() -> None:
    assert event_order("5") == event_order("5-0") < event_order("5-1") < event_order("6-0")
    assert event_order("10-0") > event_order("9-99")  # numbers, not strings
