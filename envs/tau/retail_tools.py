"""The TauBench retail tools: 16 in v1 (`TOOLS`), and the tau2 HEAD set (`TOOLS_TAU2`: no `think`, plus
`get_item_details`).

Each tool is ``fn(db, **kwargs) -> str`` over the tables ``db["users"]``, ``db["orders"]``, ``db["products"]``. It
returns what upstream's tool returns: ``json.dumps`` of the record read or changed (``find_user_id_*`` the bare id),
or ``"Error: ..."`` with upstream's wording. Mutations follow upstream's order and arithmetic (gift-card balances
rounded to 2 decimals, the item price difference of an exchange rounded but that of a pending-order modification
not, exchange/return lists sorted), because the reward compares whole databases.

Records are only changed after fetching them with ``table[key]`` (``db.py``'s overlays hand out read-only base
records on iteration). Where upstream stores a sub-dict shared with another record (item options) we store a copy:
equal values, no aliasing.

tau2 differences (``src/tau2/domains/retail/tools.py``): capitalised error messages, name/e-mail lookups that ignore
case and accents, a loose "pending" test (``"pending" in status``) for address and payment changes, explicit
"Product/Variant/Payment method not found" errors where v1 would raise a KeyError, a same-item check in
``modify_pending_order_items`` and, reproduced on purpose, its quirk of giving every modified item the price and
options of the LAST new item. Observations are ``json.dumps`` of our stored dicts; tau2's pydantic ``model_dump``
may order keys differently (the DB reward does not depend on it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hero_gym.envs.tau.common_tools import (
    Tool,
    ToolError,
    calculate_v1,
    think,
    tool,
    transfer_to_human_agents,
    version_accessors,
)

TERMINATE_TOOLS = {"transfer_to_human_agents"}
WRITE_TOOLS = {
    "cancel_pending_order",
    "exchange_delivered_order_items",
    "modify_pending_order_address",
    "modify_pending_order_items",
    "modify_pending_order_payment",
    "modify_user_address",
    "return_delivered_order_items",
}
CANCEL_REASONS = ("no longer needed", "ordered by mistake")


def _get(table: Any, key: str, message: str) -> dict:
    if key not in table:
        raise ToolError(message)
    return table[key]


def _address(address1: str, address2: str, city: str, state: str, country: str, zip: str) -> dict:
    return {"address1": address1, "address2": address2, "city": city, "state": state, "country": country, "zip": zip}


def _check_item_counts(order: dict, item_ids: list[str], message: Callable[[str], str]) -> None:
    """Each id must occur in the order at least as often as in `item_ids` (lists may repeat an item); the error is
    ``message(item_id)`` of the first id that does not."""
    in_order = [item["item_id"] for item in order["items"]]
    for item_id in item_ids:
        if item_ids.count(item_id) > in_order.count(item_id):
            raise ToolError(message(item_id))


def _first_item(order: dict, item_id: str) -> dict:
    return next(item for item in order["items"] if item["item_id"] == item_id)


def _add_to_balance(method: dict, amount: float) -> None:
    method["balance"] = round(method["balance"] + amount, 2)


# The steps below are the same in v1 and tau2 (``retail_tools_tau2`` imports them); the checks before them differ.
def _request_exchange(order: dict, item_ids: list[str], new_item_ids: list[str], method_id: str, diff: float) -> None:
    order["status"] = "exchange requested"
    order["exchange_items"] = sorted(item_ids)
    order["exchange_new_items"] = sorted(new_item_ids)
    order["exchange_payment_method_id"] = method_id
    order["exchange_price_difference"] = diff


def _charge_difference(order: dict, method: dict, method_id: str, diff: float) -> None:
    """Record the price difference of a pending-order item swap as a payment or refund; gift cards pay at once."""
    order["payment_history"].append({
        "transaction_type": "payment" if diff > 0 else "refund",
        "amount": abs(diff),
        "payment_method_id": method_id,
    })
    if method["source"] == "gift_card":
        _add_to_balance(method, -diff)


def _switch_payment(order: dict, method: dict, method_id: str, old_id: str, amount: float) -> None:
    """Record a payment on the new method and a refund to the old one; a gift-card new method pays at once."""
    order["payment_history"].extend([
        {"transaction_type": "payment", "amount": amount, "payment_method_id": method_id},
        {"transaction_type": "refund", "amount": amount, "payment_method_id": old_id},
    ])
    if method["source"] == "gift_card":
        _add_to_balance(method, -amount)


def _request_return(order: dict, item_ids: list[str], method_id: str) -> None:
    order["status"] = "return requested"
    order["return_items"] = sorted(item_ids)
    order["return_payment_method_id"] = method_id


# =================================================================================================== v1 tools
@tool
def cancel_pending_order(db: Any, order_id: str, reason: str) -> str:
    """Cancel a pending order; every payment is refunded, gift cards at once."""
    order = _get(db["orders"], order_id, "order not found")
    if order["status"] != "pending":
        raise ToolError("non-pending order cannot be cancelled")
    if reason not in CANCEL_REASONS:
        raise ToolError("invalid reason")
    refunds = []
    for payment in order["payment_history"]:
        method_id = payment["payment_method_id"]
        refunds.append({"transaction_type": "refund", "amount": payment["amount"], "payment_method_id": method_id})
        if "gift_card" in method_id:
            _add_to_balance(db["users"][order["user_id"]]["payment_methods"][method_id], payment["amount"])
    order["status"] = "cancelled"
    order["cancel_reason"] = reason
    order["payment_history"].extend(refunds)
    return json.dumps(order)


def _price_difference(db: Any, order: dict, item_ids: list[str], new_item_ids: list[str]) -> float:
    """Sum of new minus old prices; each new item must be an available variant of the old item's product."""
    if len(item_ids) != len(new_item_ids):
        raise ToolError("the number of items to be exchanged should match")
    diff = 0
    products = db["products"]
    for item_id, new_item_id in zip(item_ids, new_item_ids):
        item = _first_item(order, item_id)
        variants = products[item["product_id"]]["variants"]
        if not (new_item_id in variants and variants[new_item_id]["available"]):
            raise ToolError(f"new item {new_item_id} not found or available")
        diff += variants[new_item_id]["price"] - item["price"]
    return diff


def _user_method(db: Any, order: dict, method_id: str) -> dict:
    return _get(db["users"][order["user_id"]]["payment_methods"], method_id, "payment method not found")


@tool
def exchange_delivered_order_items(
    db: Any, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
) -> str:
    """Request an exchange of delivered items for other variants of the same products."""
    order = _get(db["orders"], order_id, "order not found")
    if order["status"] != "delivered":
        raise ToolError("non-delivered order cannot be exchanged")
    _check_item_counts(order, item_ids, lambda item_id: f"{item_id} not found")
    diff = round(_price_difference(db, order, item_ids, new_item_ids), 2)
    method = _user_method(db, order, payment_method_id)
    if method["source"] == "gift_card" and method["balance"] < diff:
        raise ToolError("insufficient gift card balance to pay for the price difference")
    _request_exchange(order, item_ids, new_item_ids, payment_method_id, diff)
    return json.dumps(order)


@tool
def find_user_id_by_email(db: Any, email: str) -> str:
    """The id of the user with this e-mail (case-insensitive)."""
    wanted = email.lower()
    for user_id, user in db["users"].items():
        if user["email"].lower() == wanted:
            return user_id
    raise ToolError("user not found")


@tool
def find_user_id_by_name_zip(db: Any, first_name: str, last_name: str, zip: str) -> str:
    """The id of the first user with this name (case-insensitive) and zip code."""
    first, last = first_name.lower(), last_name.lower()
    for user_id, user in db["users"].items():
        name = user["name"]
        if name["first_name"].lower() == first and name["last_name"].lower() == last and user["address"]["zip"] == zip:
            return user_id
    raise ToolError("user not found")


@tool
def get_order_details(db: Any, order_id: str) -> str:
    """The order record as JSON."""
    return json.dumps(_get(db["orders"], order_id, "order not found"))


@tool
def get_product_details(db: Any, product_id: str) -> str:
    """The product record (all variants) as JSON."""
    return json.dumps(_get(db["products"], product_id, "product not found"))


@tool
def get_user_details(db: Any, user_id: str) -> str:
    """The user record as JSON."""
    return json.dumps(_get(db["users"], user_id, "user not found"))


@tool
def list_all_product_types(db: Any) -> str:
    """Product name -> product id for all products, sorted by name."""
    names = {product["name"]: product["product_id"] for product in db["products"].values()}
    return json.dumps(dict(sorted(names.items())))


@tool
def modify_pending_order_address(
    db: Any, order_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
) -> str:
    """Replace the shipping address of a pending order."""
    order = _get(db["orders"], order_id, "order not found")
    if order["status"] != "pending":
        raise ToolError("non-pending order cannot be modified")
    order["address"] = _address(address1, address2, city, state, country, zip)
    return json.dumps(order)


@tool
def modify_pending_order_items(
    db: Any, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
) -> str:
    """Swap items of a pending order for other variants; the price difference is charged or refunded."""
    order = _get(db["orders"], order_id, "order not found")
    if order["status"] != "pending":
        raise ToolError("non-pending order cannot be modified")
    _check_item_counts(order, item_ids, lambda item_id: f"{item_id} not found")
    diff = _price_difference(db, order, item_ids, new_item_ids)  # upstream does not round this one
    method = _user_method(db, order, payment_method_id)
    if method["source"] == "gift_card" and method["balance"] < diff:
        raise ToolError("insufficient gift card balance to pay for the new item")
    _charge_difference(order, method, payment_method_id, diff)
    products = db["products"]
    for item_id, new_item_id in zip(item_ids, new_item_ids):
        # looked up again after earlier swaps, so a repeated id finds its next unchanged occurrence
        item = _first_item(order, item_id)
        variant = products[item["product_id"]]["variants"][new_item_id]
        item["item_id"] = new_item_id
        item["price"] = variant["price"]
        item["options"] = dict(variant["options"])
    order["status"] = "pending (item modified)"
    return json.dumps(order)


@tool
def modify_pending_order_payment(db: Any, order_id: str, payment_method_id: str) -> str:
    """Pay a pending order with another method: a payment on the new one, a refund to the old one."""
    order = _get(db["orders"], order_id, "order not found")
    if order["status"] != "pending":
        raise ToolError("non-pending order cannot be modified")
    method = _user_method(db, order, payment_method_id)
    history = order["payment_history"]
    if len(history) > 1 or history[0]["transaction_type"] != "payment":
        raise ToolError("there should be exactly one payment for a pending order")
    old_id = history[0]["payment_method_id"]
    if old_id == payment_method_id:
        raise ToolError("the new payment method should be different from the current one")
    amount = history[0]["amount"]
    if method["source"] == "gift_card" and method["balance"] < amount:
        raise ToolError("insufficient gift card balance to pay for the order")
    _switch_payment(order, method, payment_method_id, old_id, amount)
    if "gift_card" in old_id:
        _add_to_balance(db["users"][order["user_id"]]["payment_methods"][old_id], amount)
    return json.dumps(order)


@tool
def modify_user_address(
    db: Any, user_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
) -> str:
    """Replace the default address of a user."""
    user = _get(db["users"], user_id, "user not found")
    user["address"] = _address(address1, address2, city, state, country, zip)
    return json.dumps(user)


@tool
def return_delivered_order_items(db: Any, order_id: str, item_ids: list[str], payment_method_id: str) -> str:
    """Request a return of delivered items, refunded to the original method or a gift card."""
    order = _get(db["orders"], order_id, "order not found")
    if order["status"] != "delivered":
        raise ToolError("non-delivered order cannot be returned")
    _user_method(db, order, payment_method_id)
    if "gift_card" not in payment_method_id and payment_method_id != order["payment_history"][0]["payment_method_id"]:
        raise ToolError("payment method should be either the original payment method or a gift card")
    _check_item_counts(order, item_ids, lambda item_id: "some item not found")
    _request_return(order, item_ids, payment_method_id)
    return json.dumps(order)


TOOLS: dict[str, Tool] = {
    "calculate": calculate_v1,
    "cancel_pending_order": cancel_pending_order,
    "exchange_delivered_order_items": exchange_delivered_order_items,
    "find_user_id_by_email": find_user_id_by_email,
    "find_user_id_by_name_zip": find_user_id_by_name_zip,
    "get_order_details": get_order_details,
    "get_product_details": get_product_details,
    "get_user_details": get_user_details,
    "list_all_product_types": list_all_product_types,
    "modify_pending_order_address": modify_pending_order_address,
    "modify_pending_order_items": modify_pending_order_items,
    "modify_pending_order_payment": modify_pending_order_payment,
    "modify_user_address": modify_user_address,
    "return_delivered_order_items": return_delivered_order_items,
    "think": think,
    "transfer_to_human_agents": transfer_to_human_agents,
}


# TOOLS_TAU2 (resolved lazily from retail_tools_tau2, which imports from here), tools(version), schemas(version)
__getattr__, tools, schemas = version_accessors("retail", __name__, TOOLS, "hero_gym.envs.tau.retail_tools_tau2")
