"""The tau2 (HEAD) retail tools, as plain ``fn(db, **kwargs) -> str`` functions over dict tables.

tau2 raises ``ValueError("Order not found")`` where v1 returns ``"Error: order not found"``; its environment turns
the exception into ``"Error: Order not found"``, which is what these tools return. Shared tools (read-only lookups
whose only difference is the error wording) are written once here with tau2 wording; see ``retail_tools`` for the
list of behavioural differences from v1.
"""

from __future__ import annotations

import json
from typing import Any

from hero_gym.envs.tau.common_tools import (
    Tool,
    ToolError,
    calculate_tau2,
    fold_for_match,
    tool,
    transfer_to_human_agents,
)
from hero_gym.envs.tau.retail_tools import (
    CANCEL_REASONS,
    _add_to_balance,
    _address,
    _charge_difference,
    _check_item_counts,
    _first_item,
    _request_exchange,
    _request_return,
    _switch_payment,
)


def _order(db: Any, order_id: str) -> dict:
    if order_id not in db["orders"]:
        raise ToolError("Order not found")
    return db["orders"][order_id]


def _user(db: Any, user_id: str) -> dict:
    if user_id not in db["users"]:
        raise ToolError("User not found")
    return db["users"][user_id]


def _product(db: Any, product_id: str) -> dict:
    if product_id not in db["products"]:
        raise ToolError("Product not found")
    return db["products"][product_id]


def _variant(db: Any, product_id: str, item_id: str) -> dict:
    variants = _product(db, product_id)["variants"]
    if item_id not in variants:
        raise ToolError("Variant not found")
    return variants[item_id]


def _method(db: Any, user_id: str, method_id: str) -> dict:
    methods = _user(db, user_id)["payment_methods"]
    if method_id not in methods:
        raise ToolError("Payment method not found")
    return methods[method_id]


def _is_gift_card(method: dict) -> bool:
    return method["source"] == "gift_card"


@tool
def cancel_pending_order(db: Any, order_id: str, reason: str) -> str:
    """Cancel a pending order; every payment is refunded, gift cards at once."""
    order = _order(db, order_id)
    if order["status"] != "pending":
        raise ToolError("Non-pending order cannot be cancelled")
    if reason not in CANCEL_REASONS:
        raise ToolError("Invalid reason")
    refunds = []
    for payment in order["payment_history"]:
        method_id = payment["payment_method_id"]
        refunds.append({"transaction_type": "refund", "amount": payment["amount"], "payment_method_id": method_id})
        # tau2 looks every payment method up (an unknown one is an error, possibly after crediting an earlier card)
        method = _method(db, order["user_id"], method_id)
        if _is_gift_card(method):
            _add_to_balance(method, payment["amount"])
    order["status"] = "cancelled"
    order["cancel_reason"] = reason
    order["payment_history"].extend(refunds)
    return json.dumps(order)


def _swap_variants(db: Any, order: dict, item_ids: list[str], new_item_ids: list[str], *, distinct: bool):
    """(price difference, last new variant) of swapping `item_ids` for `new_item_ids`, checking each new item."""
    diff, variant = 0, None
    for item_id, new_item_id in zip(item_ids, new_item_ids):
        if distinct and item_id == new_item_id:
            raise ToolError("The new item id should be different from the old item id")
        item = _first_item(order, item_id)
        variant = _variant(db, item["product_id"], new_item_id)
        if not variant["available"]:
            raise ToolError(f"New item {new_item_id} not found or available")
        diff += variant["price"] - item["price"]
    return diff, variant


@tool
def exchange_delivered_order_items(
    db: Any, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
) -> str:
    """Request an exchange of delivered items for other variants of the same products."""
    order = _order(db, order_id)
    if order["status"] != "delivered":
        raise ToolError("Non-delivered order cannot be exchanged")
    _check_item_counts(order, item_ids, lambda i: f"Number of {i} not found.")
    if len(item_ids) != len(new_item_ids):
        raise ToolError("The number of items to be exchanged should match.")
    diff, _ = _swap_variants(db, order, item_ids, new_item_ids, distinct=False)
    diff = round(diff, 2)
    method = _method(db, order["user_id"], payment_method_id)
    if _is_gift_card(method) and method["balance"] < diff:
        raise ToolError("Insufficient gift card balance to pay for the price difference")
    _request_exchange(order, item_ids, new_item_ids, payment_method_id, diff)
    return json.dumps(order)


@tool
def find_user_id_by_name_zip(db: Any, first_name: str, last_name: str, zip: str) -> str:
    """The id of the first user with this name (ignoring case and accents) and exactly this zip code."""
    first, last = fold_for_match(first_name), fold_for_match(last_name)
    for user_id, user in db["users"].items():
        name = user["name"]
        if (
            fold_for_match(name["first_name"]) == first
            and fold_for_match(name["last_name"]) == last
            and user["address"]["zip"] == zip
        ):
            return user_id
    raise ToolError("User not found")


@tool
def find_user_id_by_email(db: Any, email: str) -> str:
    """The id of the user with this e-mail (ignoring case and accents)."""
    wanted = fold_for_match(email)
    for user_id, user in db["users"].items():
        if fold_for_match(user["email"]) == wanted:
            return user_id
    raise ToolError("User not found")


@tool
def get_order_details(db: Any, order_id: str) -> str:
    """The order record as JSON."""
    return json.dumps(_order(db, order_id))


@tool
def get_product_details(db: Any, product_id: str) -> str:
    """The product record (all variants) as JSON."""
    return json.dumps(_product(db, product_id))


@tool
def get_item_details(db: Any, item_id: str) -> str:
    """The variant record of an item id, searched over all products."""
    for product in db["products"].values():
        if item_id in product["variants"]:
            return json.dumps(product["variants"][item_id])
    raise ToolError("Item not found")


@tool
def get_user_details(db: Any, user_id: str) -> str:
    """The user record as JSON."""
    return json.dumps(_user(db, user_id))


@tool
def list_all_product_types(db: Any) -> str:
    """Product name -> product id for all products, sorted by name."""
    names = {product["name"]: product["product_id"] for product in db["products"].values()}
    return json.dumps(names, sort_keys=True)


@tool
def modify_pending_order_address(
    db: Any, order_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
) -> str:
    """Replace the shipping address of a pending (or item-modified) order."""
    order = _order(db, order_id)
    if "pending" not in order["status"]:
        raise ToolError("Non-pending order cannot be modified")
    order["address"] = _address(address1, address2, city, state, country, zip)
    return json.dumps(order)


@tool
def modify_pending_order_items(
    db: Any, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
) -> str:
    """Swap items of a pending order for other variants; the price difference is charged or refunded."""
    order = _order(db, order_id)
    if order["status"] != "pending":
        raise ToolError("Non-pending order cannot be modified")
    _check_item_counts(order, item_ids, lambda i: f"{i} not found")
    if len(item_ids) != len(new_item_ids):
        raise ToolError("The number of items to be exchanged should match")
    diff, last_variant = _swap_variants(db, order, item_ids, new_item_ids, distinct=True)
    method = _method(db, order["user_id"], payment_method_id)
    if _is_gift_card(method) and method["balance"] < diff:
        raise ToolError("Insufficient gift card balance to pay for the new item")
    _charge_difference(order, method, payment_method_id, diff)
    for item_id, new_item_id in zip(item_ids, new_item_ids):
        item = _first_item(order, item_id)
        item["item_id"] = new_item_id
        # tau2 HEAD quirk, kept for fidelity: price and options come from the last variant checked above
        item["price"] = last_variant["price"]
        item["options"] = dict(last_variant["options"])
    order["status"] = "pending (item modified)"
    return json.dumps(order)


@tool
def modify_pending_order_payment(db: Any, order_id: str, payment_method_id: str) -> str:
    """Pay a pending order with another method: a payment on the new one, a refund to the old one."""
    order = _order(db, order_id)
    if "pending" not in order["status"]:
        raise ToolError("Non-pending order cannot be modified")
    method = _method(db, order["user_id"], payment_method_id)
    history = order["payment_history"]
    if len(history) != 1 or history[0]["transaction_type"] != "payment":
        raise ToolError("There should be exactly one payment for a pending order")
    old_id = history[0]["payment_method_id"]
    if old_id == payment_method_id:
        raise ToolError("The new payment method should be different from the current one")
    amount = history[0]["amount"]
    if _is_gift_card(method) and method["balance"] < amount:
        raise ToolError("Insufficient gift card balance to pay for the order")
    _switch_payment(order, method, payment_method_id, old_id, amount)
    old_method = _method(db, order["user_id"], old_id)
    if _is_gift_card(old_method):
        _add_to_balance(old_method, amount)
    return json.dumps(order)


@tool
def modify_user_address(
    db: Any, user_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
) -> str:
    """Replace the default address of a user."""
    user = _user(db, user_id)
    user["address"] = _address(address1, address2, city, state, country, zip)
    return json.dumps(user)


@tool
def return_delivered_order_items(db: Any, order_id: str, item_ids: list[str], payment_method_id: str) -> str:
    """Request a return of delivered items, refunded to the original method or a gift card."""
    order = _order(db, order_id)
    if order["status"] != "delivered":
        raise ToolError("Non-delivered order cannot be returned")
    method = _method(db, order["user_id"], payment_method_id)
    if not _is_gift_card(method) and payment_method_id != order["payment_history"][0]["payment_method_id"]:
        raise ToolError("Payment method should be the original payment method")
    _check_item_counts(order, item_ids, lambda i: "Some item not found")
    _request_return(order, item_ids, payment_method_id)
    return json.dumps(order)


TOOLS_TAU2: dict[str, Tool] = {
    "calculate": calculate_tau2,
    "cancel_pending_order": cancel_pending_order,
    "exchange_delivered_order_items": exchange_delivered_order_items,
    "find_user_id_by_email": find_user_id_by_email,
    "find_user_id_by_name_zip": find_user_id_by_name_zip,
    "get_item_details": get_item_details,
    "get_order_details": get_order_details,
    "get_product_details": get_product_details,
    "get_user_details": get_user_details,
    "list_all_product_types": list_all_product_types,
    "modify_pending_order_address": modify_pending_order_address,
    "modify_pending_order_items": modify_pending_order_items,
    "modify_pending_order_payment": modify_pending_order_payment,
    "modify_user_address": modify_user_address,
    "return_delivered_order_items": return_delivered_order_items,
    "transfer_to_human_agents": transfer_to_human_agents,
}
