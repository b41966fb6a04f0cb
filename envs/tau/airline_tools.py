"""The TauBench airline tools: 14 in v1 (`TOOLS`), and the tau2 HEAD set (`TOOLS_TAU2`: no `think`, plus
`get_flight_status`).

Each tool is ``fn(db, **kwargs) -> str`` over ``db["flights"]``, ``db["reservations"]``, ``db["users"]`` and returns
upstream's observation: ``json.dumps`` of the record read or changed, or ``"Error: ..."`` in upstream's words.

v1 behaviour kept on purpose (the reward compares whole databases, and agents trained here meet the same tools):

- ``get_reservation_details`` on an unknown id says "Error: user not found".
- ``book_reservation`` names new reservations HATHAT, then HATHAU, then HATHAV (a fourth booking overwrites
  HATHAV), stamps ``created_at`` "2024-05-15T15:00:00", and does not take seats off the flights; gift cards are
  debited (key ``amount``, no rounding), certificates used are deleted.
- ``cancel_reservation`` appends negative refunds and sets ``status``; no policy checks (the agent must make them).
- ``update_reservation_flights`` charges the price difference, leaves the flight table alone and does not change
  the reservation's ``cabin``.
- ``search_onestop_flight``: the next-day date of an overnight first leg is ``f"2024-05-{day + 1}"``, not zero
  padded ("2024-05-01" -> "2024-05-2", which matches no flight date), and the second leg's seats/prices are read
  for the FIRST leg's date.
- ``send_certificate`` uses the first free id of certificate_3221322/3/4. When all three exist upstream returns
  None and its env crashes (pydantic ValidationError); here it returns "Error: too many certificates" instead.

We copy the agent's passenger and payment lists before storing them (upstream stores the argument lists
themselves); the stored values are equal, only aliasing differs.
"""

from __future__ import annotations

import copy
import json
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
    "book_reservation",
    "cancel_reservation",
    "send_certificate",
    "update_reservation_baggages",
    "update_reservation_flights",
    "update_reservation_passengers",
}
NOW = "2024-05-15T15:00:00"
NEW_RESERVATION_IDS = ("HATHAT", "HATHAU", "HATHAV")
CERTIFICATE_IDS = ("certificate_3221322", "certificate_3221323", "certificate_3221324")
AIRPORTS = {
    "SFO": "San Francisco", "JFK": "New York", "LAX": "Los Angeles", "ORD": "Chicago", "DFW": "Dallas",
    "DEN": "Denver", "SEA": "Seattle", "ATL": "Atlanta", "MIA": "Miami", "BOS": "Boston", "PHX": "Phoenix",
    "IAH": "Houston", "LAS": "Las Vegas", "MCO": "Orlando", "EWR": "Newark", "CLT": "Charlotte",
    "MSP": "Minneapolis", "DTW": "Detroit", "PHL": "Philadelphia", "LGA": "LaGuardia",
}
BAG_FEE = 50
INSURANCE_FEE = 30


def _reservation(db: Any, reservation_id: str) -> dict:
    if reservation_id not in db["reservations"]:
        raise ToolError("reservation not found")
    return db["reservations"][reservation_id]


# The checks and steps below are the same in v1 and tau2 (``airline_tools_tau2`` imports them) but for the wording
# of their errors: tau2 capitalises v1's messages, chosen by the `tau2` flag.
def _error(message: str, tau2: bool) -> ToolError:
    return ToolError(message[:1].upper() + message[1:] if tau2 else message)


def _check_seats(day: dict, flight_number: str, date: str, cabin: str, n_passengers: int, *, tau2: bool) -> None:
    """A flight day to book must be available and have `n_passengers` seats left in `cabin`."""
    if day["status"] != "available":
        raise _error(f"flight {flight_number} not available on date {date}", tau2)
    if day["available_seats"][cabin] < n_passengers:
        raise _error(f"not enough seats on flight {flight_number}", tau2)


def _pay_booking(user: dict, payment_methods: list[dict], total_price: float, *, tau2: bool) -> None:
    """Check a new booking's payments (each method known and, for gift cards and certificates, covering its amount;
    the amounts summing to `total_price`), then debit gift cards and delete certificates used."""
    for payment in payment_methods:
        payment_id, amount = payment["payment_id"], payment["amount"]
        if payment_id not in user["payment_methods"]:
            raise _error(f"payment method {payment_id} not found", tau2)
        method = user["payment_methods"][payment_id]
        if method["source"] in ("gift_card", "certificate") and method["amount"] < amount:
            raise _error(f"not enough balance in payment method {payment_id}", tau2)
    paid = sum(payment["amount"] for payment in payment_methods)
    if paid != total_price:
        raise _error(f"payment amount does not add up, total price is {total_price}, but paid {paid}", tau2)
    for payment in payment_methods:
        payment_id = payment["payment_id"]
        method = user["payment_methods"][payment_id]
        if method["source"] == "gift_card":
            method["amount"] -= payment["amount"]
        elif method["source"] == "certificate":
            del user["payment_methods"][payment_id]


def _update_method(user: dict, payment_id: str, amount: float, *, tau2: bool) -> dict:
    """The method paying for a change to a reservation: it must exist, not be a certificate, and cover `amount`."""
    if payment_id not in user["payment_methods"]:
        raise _error("payment method not found", tau2)
    method = user["payment_methods"][payment_id]
    if method["source"] == "certificate":
        raise _error("certificate cannot be used to update reservation", tau2)
    if method["source"] == "gift_card" and method["amount"] < amount:
        raise _error("gift card balance is not enough", tau2)
    return method


def _cancel(reservation: dict) -> None:
    """Reverse every payment by a negative entry and mark the reservation cancelled."""
    history = reservation["payment_history"]
    history.extend([{"payment_id": p["payment_id"], "amount": -p["amount"]} for p in history])
    reservation["status"] = "cancelled"


def _replace_passengers(reservation: dict, passengers: list[dict], *, tau2: bool) -> None:
    if len(passengers) != len(reservation["passengers"]):
        raise _error("number of passengers does not match", tau2)
    reservation["passengers"] = copy.deepcopy(passengers)


def _bookable(db: Any, flight_number: str, date: str, cabin: str, n_passengers: int) -> tuple[dict, dict]:
    """(flight record, its record for `date`) after v1's existence, availability and seat checks."""
    if flight_number not in db["flights"]:
        raise ToolError(f"flight {flight_number} not found")
    flight = db["flights"][flight_number]
    if date not in flight["dates"]:
        raise ToolError(f"flight {flight_number} not found on date {date}")
    day = flight["dates"][date]
    _check_seats(day, flight_number, date, cabin, n_passengers, tau2=False)
    return flight, day


@tool
def book_reservation(
    db: Any, user_id: str, origin: str, destination: str, flight_type: str, cabin: str, flights: list[dict],
    passengers: list[dict], payment_methods: list[dict], total_baggages: int, nonfree_baggages: int, insurance: str,
) -> str:
    """Book a reservation, pricing each flight from the flight table and charging the given payment methods."""
    reservations, users = db["reservations"], db["users"]
    if user_id not in users:
        raise ToolError("user not found")
    user = users[user_id]
    reservation_id = next((r for r in NEW_RESERVATION_IDS[:2] if r not in reservations), NEW_RESERVATION_IDS[2])
    reservation = {
        "reservation_id": reservation_id, "user_id": user_id, "origin": origin, "destination": destination,
        "flight_type": flight_type, "cabin": cabin, "flights": copy.deepcopy(flights),
        "passengers": copy.deepcopy(passengers), "payment_history": copy.deepcopy(payment_methods),
        "created_at": NOW, "total_baggages": total_baggages, "nonfree_baggages": nonfree_baggages,
        "insurance": insurance,
    }
    total_price = 0
    for leg in reservation["flights"]:
        flight, day = _bookable(db, leg["flight_number"], leg["date"], cabin, len(passengers))
        leg["price"] = day["prices"][cabin]
        leg["origin"] = flight["origin"]
        leg["destination"] = flight["destination"]
        total_price += leg["price"] * len(passengers)
    if insurance == "yes":
        total_price += INSURANCE_FEE * len(passengers)
    total_price += BAG_FEE * nonfree_baggages
    _pay_booking(user, payment_methods, total_price, tau2=False)
    reservations[reservation_id] = reservation
    user["reservations"].append(reservation_id)
    return json.dumps(reservation)


@tool
def cancel_reservation(db: Any, reservation_id: str) -> str:
    """Cancel a whole reservation: every payment is reversed by a negative entry."""
    reservation = _reservation(db, reservation_id)
    _cancel(reservation)
    return json.dumps(reservation)


@tool
def get_reservation_details(db: Any, reservation_id: str) -> str:
    """The reservation record as JSON (an unknown id gives upstream's 'user not found')."""
    if reservation_id not in db["reservations"]:
        raise ToolError("user not found")
    return json.dumps(db["reservations"][reservation_id])


@tool
def get_user_details(db: Any, user_id: str) -> str:
    """The user record as JSON."""
    if user_id not in db["users"]:
        raise ToolError("user not found")
    return json.dumps(db["users"][user_id])


@tool
def list_all_airports(db: Any) -> str:
    """The 20 airports as {IATA code: city}."""
    return json.dumps(AIRPORTS)


def _with_day(flight: dict, day: dict) -> dict:
    """A flight record without its calendar, followed by the fields of one day."""
    result = {k: v for k, v in flight.items() if k != "dates"}
    result.update(day)
    return result


@tool
def search_direct_flight(db: Any, origin: str, destination: str, date: str) -> str:
    """Flights from origin to destination that are available on `date`."""
    results = [
        _with_day(flight, flight["dates"][date])
        for flight in db["flights"].values()
        if flight["origin"] == origin and flight["destination"] == destination
        and date in flight["dates"] and flight["dates"][date]["status"] == "available"
    ]
    return json.dumps(results)


@tool
def search_onestop_flight(db: Any, origin: str, destination: str, date: str) -> str:
    """Pairs of available flights origin -> X -> destination, the second leaving after the first lands."""
    flights = list(db["flights"].values())
    results = []
    for first in flights:
        if first["origin"] != origin:
            continue
        for second in flights:
            if second["destination"] != destination or first["destination"] != second["origin"]:
                continue
            # upstream: unpadded next-day date for an overnight first leg
            date2 = f"2024-05-{int(date[-2:]) + 1}" if "+1" in first["scheduled_arrival_time_est"] else date
            if first["scheduled_arrival_time_est"] > second["scheduled_departure_time_est"]:
                continue
            if date in first["dates"] and date2 in second["dates"]:
                if first["dates"][date]["status"] == "available" and second["dates"][date2]["status"] == "available":
                    leg1 = _with_day(first, first["dates"][date])
                    leg1["date"] = date
                    leg2 = _with_day(second, second["dates"][date])  # upstream reads `date`, not `date2`
                    leg2["date"] = date2
                    results.append([leg1, leg2])
    return json.dumps(results)


@tool
def send_certificate(db: Any, user_id: str, amount: float) -> str:
    """Give the user a certificate of `amount` under the first free certificate id."""
    if user_id not in db["users"]:
        raise ToolError("user not found")
    methods = db["users"][user_id]["payment_methods"]
    for payment_id in CERTIFICATE_IDS:
        if payment_id not in methods:
            methods[payment_id] = {"source": "certificate", "amount": amount, "id": payment_id}
            return f"Certificate {payment_id} added to user {user_id} with amount {amount}."
    # upstream returns None here and its env crashes; we report it instead
    raise ToolError("too many certificates")


@tool
def update_reservation_baggages(
    db: Any, reservation_id: str, total_baggages: int, nonfree_baggages: int, payment_id: str
) -> str:
    """Set the bag counts; only added non-free bags are charged."""
    reservation = _reservation(db, reservation_id)
    total_price = BAG_FEE * max(0, nonfree_baggages - reservation["nonfree_baggages"])
    method = _update_method(db["users"][reservation["user_id"]], payment_id, total_price, tau2=False)
    reservation["total_baggages"] = total_baggages
    reservation["nonfree_baggages"] = nonfree_baggages
    if method["source"] == "gift_card":
        method["amount"] -= total_price
    if total_price != 0:
        reservation["payment_history"].append({"payment_id": payment_id, "amount": total_price})
    return json.dumps(reservation)


@tool
def update_reservation_flights(db: Any, reservation_id: str, cabin: str, flights: list[dict], payment_id: str) -> str:
    """Replace the reservation's flights (the whole new itinerary) and charge or refund the difference."""
    reservation = _reservation(db, reservation_id)
    n_passengers = len(reservation["passengers"])
    flights = copy.deepcopy(flights)
    total_price = 0
    for leg in flights:
        kept = [
            f for f in reservation["flights"]
            if f["flight_number"] == leg["flight_number"] and f["date"] == leg["date"] and cabin == reservation["cabin"]
        ]
        if kept:  # an unchanged leg keeps the price it was bought at
            source = kept[0]
            leg["price"], leg["origin"], leg["destination"] = source["price"], source["origin"], source["destination"]
        else:
            flight, day = _bookable(db, leg["flight_number"], leg["date"], cabin, n_passengers)
            leg["price"], leg["origin"], leg["destination"] = day["prices"][cabin], flight["origin"], flight["destination"]
        total_price += leg["price"] * n_passengers
    total_price -= sum(f["price"] for f in reservation["flights"]) * n_passengers
    method = _update_method(db["users"][reservation["user_id"]], payment_id, total_price, tau2=False)
    if method["source"] == "gift_card":
        method["amount"] -= total_price
    reservation["flights"] = flights
    if total_price != 0:
        reservation["payment_history"].append({"payment_id": payment_id, "amount": total_price})
    return json.dumps(reservation)


@tool
def update_reservation_passengers(db: Any, reservation_id: str, passengers: list[dict]) -> str:
    """Replace the passenger list; the number of passengers cannot change."""
    reservation = _reservation(db, reservation_id)
    _replace_passengers(reservation, passengers, tau2=False)
    return json.dumps(reservation)


TOOLS: dict[str, Tool] = {
    "book_reservation": book_reservation,
    "calculate": calculate_v1,
    "cancel_reservation": cancel_reservation,
    "get_reservation_details": get_reservation_details,
    "get_user_details": get_user_details,
    "list_all_airports": list_all_airports,
    "search_direct_flight": search_direct_flight,
    "search_onestop_flight": search_onestop_flight,
    "send_certificate": send_certificate,
    "think": think,
    "transfer_to_human_agents": transfer_to_human_agents,
    "update_reservation_baggages": update_reservation_baggages,
    "update_reservation_flights": update_reservation_flights,
    "update_reservation_passengers": update_reservation_passengers,
}


# TOOLS_TAU2 (resolved lazily from airline_tools_tau2, which imports from here), tools(version), schemas(version)
__getattr__, tools, schemas = version_accessors("airline", __name__, TOOLS, "hero_gym.envs.tau.airline_tools_tau2")
