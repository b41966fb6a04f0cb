"""Retail tools on the real v1 / tau2 data: exact observations, error branches and database mutations.

Expected values are read from the published data and upstream's documented behaviour, never from the tools.
"""

import copy
import json

import pytest

from hero_gym.data import load_json
from hero_gym.envs.tau import retail_tools
from hero_gym.envs.tau.db import TauDB

T = retail_tools.TOOLS
T2 = retail_tools.tools("tau2")


def base(table):
    return load_json("tau-v1", f"tau/v1/retail/{table}.json")


@pytest.fixture
def db():
    return TauDB("v1", "retail")


@pytest.fixture
def db2():
    return TauDB("tau2", "retail")


# ------------------------------------------------------------------------------------------------ schemas/API
def test_v1_schemas_are_upstream_tools_json():
    assert retail_tools.schemas("v1") == load_json("tau-v1", "tau/v1/retail/tools.json")
    assert [s["function"]["name"] for s in retail_tools.schemas()] == list(T)
    assert len(T) == 16
    assert retail_tools.WRITE_TOOLS < set(T)
    # schemas() must hand out copies: editing one cannot change the next call
    retail_tools.schemas()[0]["function"]["name"] = "x"
    assert retail_tools.schemas()[0]["function"]["name"] == "calculate"


def test_tau2_schemas_match_tau2_tool_set():
    names = [s["function"]["name"] for s in retail_tools.schemas("tau2")]
    assert sorted(names) == sorted(T2) and len(names) == 16
    assert "think" not in names and "get_item_details" in names
    item = next(s for s in retail_tools.schemas("tau2") if s["function"]["name"] == "get_item_details")
    assert item["function"]["parameters"]["required"] == ["item_id"]
    assert retail_tools.TOOLS_TAU2 is T2


# ---------------------------------------------------------------------------------------------------- reads
def test_read_tools_return_json_of_the_record(db):
    assert T["get_order_details"](db, order_id="#W6779827") == json.dumps(base("orders")["#W6779827"])
    assert T["get_user_details"](db, user_id="ethan_lopez_6291") == json.dumps(base("users")["ethan_lopez_6291"])
    pid = base("orders")["#W6779827"]["items"][0]["product_id"]
    assert T["get_product_details"](db, product_id=pid) == json.dumps(base("products")[pid])


@pytest.mark.parametrize("tool, kwargs, message", [
    ("get_order_details", {"order_id": "W6779827"}, "Error: order not found"),
    ("get_user_details", {"user_id": "nobody_1"}, "Error: user not found"),
    ("get_product_details", {"product_id": "1"}, "Error: product not found"),
    ("find_user_id_by_email", {"email": "no@example.com"}, "Error: user not found"),
    ("find_user_id_by_name_zip", {"first_name": "Ethan", "last_name": "Lopez", "zip": "00000"},
     "Error: user not found"),
])
def test_read_tool_errors(db, tool, kwargs, message):
    assert T[tool](db, **kwargs) == message


def test_find_user_id_is_case_insensitive_and_returns_the_bare_id(db):
    user = base("users")["ethan_lopez_6291"]
    assert T["find_user_id_by_email"](db, email=user["email"].upper()) == "ethan_lopez_6291"
    assert T["find_user_id_by_name_zip"](
        db, first_name="ETHAN", last_name="lopez", zip=user["address"]["zip"]) == "ethan_lopez_6291"


def test_list_all_product_types_is_sorted_name_to_id(db):
    listed = json.loads(T["list_all_product_types"](db))
    assert len(listed) == 50 and list(listed) == sorted(listed)
    assert listed == {p["name"]: pid for pid, p in base("products").items()}


# --------------------------------------------------------------------------------------------------- cancel
def test_cancel_refunds_gift_card_at_once(db):
    before = copy.deepcopy(base("orders")["#W6779827"])
    paid = before["payment_history"][0]
    balance = base("users")["ethan_lopez_6291"]["payment_methods"]["gift_card_7219486"]["balance"]
    out = T["cancel_pending_order"](db, order_id="#W6779827", reason="no longer needed")
    order = db["orders"]["#W6779827"]
    assert out == json.dumps(order)
    assert order["status"] == "cancelled" and order["cancel_reason"] == "no longer needed"
    assert order["payment_history"] == before["payment_history"] + [
        {"transaction_type": "refund", "amount": paid["amount"], "payment_method_id": "gift_card_7219486"}]
    card = db["users"]["ethan_lopez_6291"]["payment_methods"]["gift_card_7219486"]
    assert card["balance"] == round(balance + paid["amount"], 2)


def test_cancel_errors_leave_db_unchanged(db):
    assert T["cancel_pending_order"](db, order_id="#W0000000", reason="no longer needed") == "Error: order not found"
    assert T["cancel_pending_order"](db, order_id="#W4250821", reason="no longer needed") == (
        "Error: non-pending order cannot be cancelled")
    assert T["cancel_pending_order"](db, order_id="#W6779827", reason="changed my mind") == "Error: invalid reason"
    assert db["orders"]["#W6779827"] == base("orders")["#W6779827"]


# ------------------------------------------------------------------------------------------------- exchange
def _other_variant(product_id, item_id, available=True):
    variants = base("products")[product_id]["variants"]
    return next(v for k, v in variants.items() if k != item_id and v["available"] == available)


def test_exchange_records_request_and_rounded_difference(db):
    order0 = base("orders")["#W4250821"]
    first, second = order0["items"][0], order0["items"][1]
    new1 = _other_variant(first["product_id"], first["item_id"])
    new2 = _other_variant(second["product_id"], second["item_id"])
    out = T["exchange_delivered_order_items"](
        db, order_id="#W4250821", item_ids=[second["item_id"], first["item_id"]],
        new_item_ids=[new2["item_id"], new1["item_id"]], payment_method_id="credit_card_8041020")
    order = db["orders"]["#W4250821"]
    assert out == json.dumps(order)
    assert order["status"] == "exchange requested"
    assert order["exchange_items"] == sorted([second["item_id"], first["item_id"]])
    assert order["exchange_new_items"] == sorted([new2["item_id"], new1["item_id"]])
    assert order["exchange_payment_method_id"] == "credit_card_8041020"
    assert order["exchange_price_difference"] == round(
        new2["price"] - second["price"] + new1["price"] - first["price"], 2)
    assert order["items"] == order0["items"]  # nothing is swapped until the exchange happens
    assert order["payment_history"] == order0["payment_history"]


def test_exchange_errors(db):
    ex = T["exchange_delivered_order_items"]
    item = base("orders")["#W4250821"]["items"][0]
    new = _other_variant(item["product_id"], item["item_id"])["item_id"]
    args = dict(order_id="#W4250821", item_ids=[item["item_id"]], new_item_ids=[new], payment_method_id="gift_card_6052478")
    assert ex(db, **{**args, "order_id": "#W6779827"}) == "Error: non-delivered order cannot be exchanged"
    assert ex(db, **{**args, "item_ids": ["123"]}) == "Error: 123 not found"
    assert ex(db, **{**args, "item_ids": [item["item_id"]] * 2, "new_item_ids": [new] * 2}) == (
        f"Error: {item['item_id']} not found")
    assert ex(db, **{**args, "new_item_ids": [new, new]}) == "Error: the number of items to be exchanged should match"
    assert ex(db, **{**args, "new_item_ids": ["999"]}) == "Error: new item 999 not found or available"
    assert ex(db, **{**args, "payment_method_id": "paypal_1"}) == "Error: payment method not found"
    db["users"]["sophia_jackson_6355"]["payment_methods"]["gift_card_6052478"]["balance"] = -1000
    assert ex(db, **args) == "Error: insufficient gift card balance to pay for the price difference"
    assert db["orders"]["#W4250821"]["status"] == "delivered"


def test_exchange_unavailable_variant(db):
    for oid, order in base("orders").items():
        if order["status"] != "delivered":
            continue
        item = order["items"][0]
        variants = base("products")[item["product_id"]]["variants"]
        gone = [k for k, v in variants.items() if not v["available"]]
        if gone:
            out = T["exchange_delivered_order_items"](
                db, order_id=oid, item_ids=[item["item_id"]], new_item_ids=[gone[0]],
                payment_method_id=order["payment_history"][0]["payment_method_id"])
            assert out == f"Error: new item {gone[0]} not found or available"
            return
    pytest.fail("the data has no delivered order with an unavailable variant")


def test_dangling_reference_propagates_like_upstream(db):
    # upstream indexes users[order["user_id"]] directly; the env turns the KeyError into "Error: 'ghost'"
    db["orders"]["#W4250821"]["user_id"] = "ghost"
    item = base("orders")["#W4250821"]["items"][0]
    new = _other_variant(item["product_id"], item["item_id"])
    with pytest.raises(KeyError, match="ghost"):
        T["exchange_delivered_order_items"](
            db, order_id="#W4250821", item_ids=[item["item_id"]], new_item_ids=[new["item_id"]],
            payment_method_id="gift_card_6052478")


# ------------------------------------------------------------------------------------------ modify pending
def test_modify_items_swaps_variants_and_charges_gift_card(db):
    order0 = base("orders")["#W8367380"]  # pending, paid by credit card; the user also has gift_card_1994993
    item = order0["items"][0]
    new = _other_variant(item["product_id"], item["item_id"])
    balance = base("users")["ava_nguyen_6646"]["payment_methods"]["gift_card_1994993"]["balance"]
    diff = new["price"] - item["price"]
    # the data is checksum-pinned, so this fixture fact cannot drift; assert it rather than skip
    assert diff <= balance, "fixture precondition: the other variant must be affordable with the gift card"
    out = T["modify_pending_order_items"](
        db, order_id="#W8367380", item_ids=[item["item_id"]], new_item_ids=[new["item_id"]],
        payment_method_id="gift_card_1994993")
    order = db["orders"]["#W8367380"]
    assert out == json.dumps(order)
    assert order["status"] == "pending (item modified)"
    assert order["items"][0] == {**item, "item_id": new["item_id"], "price": new["price"], "options": new["options"]}
    assert order["payment_history"][-1] == {
        "transaction_type": "payment" if diff > 0 else "refund", "amount": abs(diff),
        "payment_method_id": "gift_card_1994993"}
    assert db["users"]["ava_nguyen_6646"]["payment_methods"]["gift_card_1994993"]["balance"] == round(balance - diff, 2)
    # the order is no longer "pending", so a second modification is refused
    assert T["modify_pending_order_items"](
        db, order_id="#W8367380", item_ids=[new["item_id"]], new_item_ids=[item["item_id"]],
        payment_method_id="gift_card_1994993") == "Error: non-pending order cannot be modified"


def test_modify_items_with_repeated_item_swaps_each_occurrence(db):
    order0 = base("orders")["#W9093821"]  # pending, item 3557711149 appears twice
    dup = next(i for i in order0["items"] if i["item_id"] == "3557711149")
    new = _other_variant(dup["product_id"], dup["item_id"])
    pay = order0["payment_history"][0]["payment_method_id"]
    T["modify_pending_order_items"](db, order_id="#W9093821", item_ids=["3557711149", "3557711149"],
                                    new_item_ids=[new["item_id"], new["item_id"]], payment_method_id=pay)
    ids = [i["item_id"] for i in db["orders"]["#W9093821"]["items"]]
    assert ids.count(new["item_id"]) == 2 and "3557711149" not in ids
    assert T["modify_pending_order_items"](db, order_id="#W9093821", item_ids=[], new_item_ids=[],
                                           payment_method_id=pay) == "Error: non-pending order cannot be modified"


def test_modify_items_gift_card_balance_error(db):
    order0 = base("orders")["#W8367380"]
    item = order0["items"][0]
    pricier = next((v for v in base("products")[item["product_id"]]["variants"].values()
                    if v["available"] and v["price"] > item["price"]), None)
    assert pricier is not None
    db["users"]["ava_nguyen_6646"]["payment_methods"]["gift_card_1994993"]["balance"] = 0
    assert T["modify_pending_order_items"](
        db, order_id="#W8367380", item_ids=[item["item_id"]], new_item_ids=[pricier["item_id"]],
        payment_method_id="gift_card_1994993") == "Error: insufficient gift card balance to pay for the new item"


def test_modify_payment_moves_the_charge(db):
    order0 = base("orders")["#W8367380"]
    amount = order0["payment_history"][0]["amount"]
    db["users"]["ava_nguyen_6646"]["payment_methods"]["gift_card_1994993"]["balance"] = amount + 10.005
    out = T["modify_pending_order_payment"](db, order_id="#W8367380", payment_method_id="gift_card_1994993")
    order = db["orders"]["#W8367380"]
    assert out == json.dumps(order)
    assert order["status"] == "pending"
    assert order["payment_history"] == order0["payment_history"] + [
        {"transaction_type": "payment", "amount": amount, "payment_method_id": "gift_card_1994993"},
        {"transaction_type": "refund", "amount": amount, "payment_method_id": "credit_card_5683823"}]
    assert db["users"]["ava_nguyen_6646"]["payment_methods"]["gift_card_1994993"]["balance"] == round(amount + 10.005 - amount, 2)
    # now three entries: a second change is refused
    assert T["modify_pending_order_payment"](db, order_id="#W8367380", payment_method_id="credit_card_5683823") == (
        "Error: there should be exactly one payment for a pending order")


def test_modify_payment_refunds_old_gift_card(db):
    amount = base("orders")["#W6779827"]["payment_history"][0]["amount"]
    balance = base("users")["ethan_lopez_6291"]["payment_methods"]["gift_card_7219486"]["balance"]
    other = next(k for k in base("users")["ethan_lopez_6291"]["payment_methods"] if k != "gift_card_7219486")
    T["modify_pending_order_payment"](db, order_id="#W6779827", payment_method_id=other)
    assert db["users"]["ethan_lopez_6291"]["payment_methods"]["gift_card_7219486"]["balance"] == round(balance + amount, 2)


def test_modify_payment_errors(db):
    mp = T["modify_pending_order_payment"]
    assert mp(db, order_id="#W1", payment_method_id="x") == "Error: order not found"
    assert mp(db, order_id="#W4250821", payment_method_id="x") == "Error: non-pending order cannot be modified"
    assert mp(db, order_id="#W8367380", payment_method_id="x") == "Error: payment method not found"
    assert mp(db, order_id="#W8367380", payment_method_id="credit_card_5683823") == (
        "Error: the new payment method should be different from the current one")
    db["users"]["ava_nguyen_6646"]["payment_methods"]["gift_card_1994993"]["balance"] = 1
    assert mp(db, order_id="#W8367380", payment_method_id="gift_card_1994993") == (
        "Error: insufficient gift card balance to pay for the order")


def test_modify_addresses_store_upstream_key_order(db):
    addr = dict(address1="1 Main St", address2="", city="Austin", state="TX", country="USA", zip="78701")
    out = T["modify_pending_order_address"](db, order_id="#W8367380", **addr)
    assert json.loads(out)["address"] == addr and list(json.loads(out)["address"]) == list(addr)
    assert db["orders"]["#W8367380"]["status"] == "pending"
    assert T["modify_pending_order_address"](db, order_id="#W4250821", **addr) == (
        "Error: non-pending order cannot be modified")
    out = T["modify_user_address"](db, user_id="ava_nguyen_6646", **addr)
    assert out == json.dumps(db["users"]["ava_nguyen_6646"]) and db["users"]["ava_nguyen_6646"]["address"] == addr
    assert T["modify_user_address"](db, user_id="nobody", **addr) == "Error: user not found"


# --------------------------------------------------------------------------------------------------- return
def test_return_to_gift_card(db):
    item_ids = [i["item_id"] for i in base("orders")["#W4250821"]["items"]][::-1]
    out = T["return_delivered_order_items"](db, order_id="#W4250821", item_ids=item_ids,
                                            payment_method_id="gift_card_6052478")
    order = db["orders"]["#W4250821"]
    assert out == json.dumps(order)
    assert order["status"] == "return requested"
    assert order["return_items"] == sorted(item_ids)
    assert order["return_payment_method_id"] == "gift_card_6052478"


def test_return_errors(db):
    ret = T["return_delivered_order_items"]
    item = base("orders")["#W4250821"]["items"][0]["item_id"]
    assert ret(db, order_id="#W8367380", item_ids=[item], payment_method_id="x") == (
        "Error: non-delivered order cannot be returned")
    assert ret(db, order_id="#W4250821", item_ids=[item], payment_method_id="x") == "Error: payment method not found"
    assert ret(db, order_id="#W4250821", item_ids=[item], payment_method_id="paypal_7425862") == (
        "Error: payment method should be either the original payment method or a gift card")
    assert ret(db, order_id="#W4250821", item_ids=[item, item], payment_method_id="credit_card_8041020") == (
        "Error: some item not found")
    assert db["orders"]["#W4250821"]["status"] == "delivered"


# ----------------------------------------------------------------------------------------------------- tau2
def test_tau2_errors_are_capitalised(db2):
    assert T2["get_order_details"](db2, order_id="#W0") == "Error: Order not found"
    assert T2["get_user_details"](db2, user_id="x") == "Error: User not found"
    assert T2["get_product_details"](db2, product_id="x") == "Error: Product not found"
    assert T2["cancel_pending_order"](db2, order_id="#W4250821", reason="no longer needed") == (
        "Error: Non-pending order cannot be cancelled")
    assert T2["return_delivered_order_items"](db2, order_id="#W4250821", item_ids=[],
                                              payment_method_id="paypal_7425862") == (
        "Error: Payment method should be the original payment method")


def test_tau2_lookup_ignores_case_and_accents(db2):
    user = load_json("tau2", "tau/tau2/retail/db.json")["users"]["ethan_lopez_6291"]
    assert T2["find_user_id_by_name_zip"](db2, first_name="Éthan", last_name="LÓPEZ",
                                          zip=user["address"]["zip"]) == "ethan_lopez_6291"
    assert T2["find_user_id_by_email"](db2, email=" " + user["email"].upper()) == "ethan_lopez_6291"
    assert T2["find_user_id_by_email"](db2, email="nobody@example.com") == "Error: User not found"


def test_tau2_get_item_details(db2):
    products = load_json("tau2", "tau/tau2/retail/db.json")["products"]
    product = next(iter(products.values()))
    item_id, variant = next(iter(product["variants"].items()))
    assert T2["get_item_details"](db2, item_id=item_id) == json.dumps(variant)
    assert T2["get_item_details"](db2, item_id=product["product_id"]) == "Error: Item not found"


def test_tau2_modify_items_checks_and_last_variant_quirk(db2):
    order0 = load_json("tau2", "tau/tau2/retail/db.json")["orders"]["#W8367380"]
    a, b = order0["items"][0], order0["items"][1]
    pay = order0["payment_history"][0]["payment_method_id"]
    mi = T2["modify_pending_order_items"]
    assert mi(db2, order_id="#W8367380", item_ids=[a["item_id"]], new_item_ids=[a["item_id"]],
              payment_method_id=pay) == "Error: The new item id should be different from the old item id"
    assert mi(db2, order_id="#W8367380", item_ids=[a["item_id"]], new_item_ids=["42"],
              payment_method_id=pay) == "Error: Variant not found"
    new_a, new_b = _other_variant(a["product_id"], a["item_id"]), _other_variant(b["product_id"], b["item_id"])
    mi(db2, order_id="#W8367380", item_ids=[a["item_id"], b["item_id"]],
       new_item_ids=[new_a["item_id"], new_b["item_id"]], payment_method_id=pay)
    items = db2["orders"]["#W8367380"]["items"]
    assert [items[0]["item_id"], items[1]["item_id"]] == [new_a["item_id"], new_b["item_id"]]
    # tau2 HEAD gives every swapped item the price and options of the last new variant
    assert items[0]["price"] == items[1]["price"] == new_b["price"]
    assert items[0]["options"] == new_b["options"]
    paid = db2["orders"]["#W8367380"]["payment_history"][-1]
    diff = new_a["price"] - a["price"] + new_b["price"] - b["price"]
    assert paid["amount"] == abs(diff)


def test_tau2_address_change_allowed_after_item_modification(db2):
    db2["orders"]["#W8367380"]["status"] = "pending (item modified)"
    addr = dict(address1="1 Main St", address2="", city="Austin", state="TX", country="USA", zip="78701")
    assert json.loads(T2["modify_pending_order_address"](db2, order_id="#W8367380", **addr))["address"] == addr
    db = TauDB("v1", "retail")
    db["orders"]["#W8367380"]["status"] = "pending (item modified)"
    assert T["modify_pending_order_address"](db, order_id="#W8367380", **addr) == (
        "Error: non-pending order cannot be modified")
