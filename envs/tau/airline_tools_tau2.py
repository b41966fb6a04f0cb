"""The tau2 (HEAD) airline tools, as plain ``fn(db, **kwargs) -> str`` functions over dict tables.

Differences from v1 (``src/tau2/domains/airline/tools.py``), all reproduced:

- user, reservation and flight ids are looked up tolerantly (case, accents, surrounding spaces) and stored in
  their canonical form; errors name the id ("Error: User x not found", "Error: Reservation x not found").
- ``book_reservation`` takes the booked seats off the flight days, refuses a fourth booking ("Too many
  reservations") and stores each leg as {flight_number, origin, destination, date, price}.
- ``update_reservation_flights`` also sets the reservation's ``cabin``, and checks every flight number exists.
- ``search_onestop_flight`` reads the second leg on its own date (the v1 date bug is fixed; the unpadded next-day
  date is not), and search results are tau2's DirectFlight records (with ``date``: null for direct searches).
- ``send_certificate`` stores the amount as a float (tau2's Certificate model) and fails with "Too many
  certificates" when the three ids are taken; ``get_flight_status`` is new; ``think`` is gone.

Not reproduced: tau2 holds the database as pydantic models, so its observations are ``model_dump`` output (field
order of the model, gift-card amounts as floats, ``"status": null`` on reservations) and numeric fields are coerced
to the model's type. Here observations are ``json.dumps`` of the stored dicts and only the certificate amount is
coerced; the DB reward compares our own gold replay with the agent's, so it is unaffected.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hero_gym.envs.tau.airline_tools import (
    AIRPORTS,
    BAG_FEE,
    CERTIFICATE_IDS,
    INSURANCE_FEE,
    NEW_RESERVATION_IDS,
    NOW,
    _cancel,
    _check_seats,
    _pay_booking,
    _replace_passengers,
    _update_method,
)
from hero_gym.envs.tau.common_tools import Tool, ToolError, calculate_tau2, resolve_key_folded, tool
from hero_gym.envs.tau.common_tools import transfer_to_human_agents


def _lookup(db: Any, table: str, key: str, what: str) -> dict:
    canonical = resolve_key_folded(db[table], key)
    if canonical is None:
        raise ToolError(f"{what} {key} not found")
    return db[table][canonical]


def _user(db: Any, user_id: str) -> dict:
    return _lookup(db, "users", user_id, "User")


def _reservation(db: Any, reservation_id: str) -> dict:
    return _lookup(db, "reservations", reservation_id, "Reservation")


def _flight(db: Any, flight_number: str) -> dict:
    return _lookup(db, "flights", flight_number, "Flight")


def _day(flight: dict, date: str, named: str) -> dict:
    if date not in flight["dates"]:
        raise ToolError(f"Flight {named} not found on date {date}")
    return flight["dates"][date]


def _new_leg(db: Any, flight_number: str, date: str, cabin: str, n_passengers: int) -> tuple[dict, dict]:
    """(reservation leg, flight-day record) of a flight to add, after availability and seat checks."""
    flight = _flight(db, flight_number)
    number = flight["flight_number"]
    day = _day(flight, date, number)
    _check_seats(day, number, date, cabin, n_passengers, tau2=True)
    leg = {"flight_number": number, "origin": flight["origin"], "destination": flight["destination"],
           "date": date, "price": day["prices"][cabin]}
    return leg, day


def _update_payment(user: dict, payment_id: str, total_price: float) -> dict | None:
    """Charge a reservation change to `payment_id`; the payment entry to record, or None when nothing is due."""
    method = _update_method(user, payment_id, total_price, tau2=True)
    if method["source"] == "gift_card":
        method["amount"] -= total_price
    return {"payment_id": payment_id, "amount": total_price} if total_price != 0 else None


@tool
def book_reservation(
    db: Any, user_id: str, origin: str, destination: str, flight_type: str, cabin: str, flights: list[dict],
    passengers: list[dict], payment_methods: list[dict], total_baggages: int, nonfree_baggages: int, insurance: str,
) -> str:
    """Book a reservation, take its seats off the flights and charge the given payment methods."""
    user = _user(db, user_id)
    user_id = user["user_id"]
    reservation_id = next((r for r in NEW_RESERVATION_IDS if r not in db["reservations"]), None)
    if reservation_id is None:
        raise ToolError("Too many reservations")
    legs, days, total_price = [], [], 0
    for info in flights:
        leg, day = _new_leg(db, info["flight_number"], info["date"], cabin, len(passengers))
        legs.append(leg)
        days.append(day)
        total_price += leg["price"] * len(passengers)
    if insurance == "yes":
        total_price += INSURANCE_FEE * len(passengers)
    total_price += BAG_FEE * nonfree_baggages
    _pay_booking(user, payment_methods, total_price, tau2=True)
    for day in days:
        day["available_seats"][cabin] -= len(passengers)
    reservation = {
        "reservation_id": reservation_id, "user_id": user_id, "origin": origin, "destination": destination,
        "flight_type": flight_type, "cabin": cabin, "flights": legs, "passengers": copy.deepcopy(passengers),
        "payment_history": copy.deepcopy(payment_methods), "created_at": NOW, "total_baggages": total_baggages,
        "nonfree_baggages": nonfree_baggages, "insurance": insurance,
    }
    db["reservations"][reservation_id] = reservation
    user["reservations"].append(reservation_id)
    return json.dumps(reservation)


@tool
def cancel_reservation(db: Any, reservation_id: str) -> str:
    """Cancel a whole reservation: every payment is reversed by a negative entry (seats are not released)."""
    reservation = _reservation(db, reservation_id)
    _cancel(reservation)
    return json.dumps(reservation)


@tool
def get_reservation_details(db: Any, reservation_id: str) -> str:
    """The reservation record as JSON."""
    return json.dumps(_reservation(db, reservation_id))


@tool
def get_user_details(db: Any, user_id: str) -> str:
    """The user record as JSON."""
    return json.dumps(_user(db, user_id))


@tool
def list_all_airports(db: Any) -> str:
    """The 20 airports as a list of {iata, city}."""
    return json.dumps([{"iata": code, "city": city} for code, city in AIRPORTS.items()])


def _direct(db: Any, date: str, origin: str | None, destination: str | None, leave_after: str | None = None):
    """tau2's DirectFlight records of flights available on `date` matching the given filters."""
    results = []
    for flight in db["flights"].values():
        day = flight["dates"].get(date)
        if (
            (origin is None or flight["origin"] == origin)
            and (destination is None or flight["destination"] == destination)
            and day is not None and day["status"] == "available"
            and (leave_after is None or flight["scheduled_departure_time_est"] >= leave_after)
        ):
            results.append({
                "flight_number": flight["flight_number"], "origin": flight["origin"],
                "destination": flight["destination"], "status": "available",
                "scheduled_departure_time_est": flight["scheduled_departure_time_est"],
                "scheduled_arrival_time_est": flight["scheduled_arrival_time_est"], "date": None,
                "available_seats": day["available_seats"], "prices": day["prices"],
            })
    return results


@tool
def search_direct_flight(db: Any, origin: str, destination: str, date: str) -> str:
    """Flights from origin to destination that are available on `date`."""
    return json.dumps(_direct(db, date, origin, destination))


@tool
def search_onestop_flight(db: Any, origin: str, destination: str, date: str) -> str:
    """Pairs of available flights origin -> X -> destination, the second leaving after the first lands."""
    results = []
    for first in _direct(db, date, origin, None):
        first["date"] = date
        date2 = f"2024-05-{int(date[-2:]) + 1}" if "+1" in first["scheduled_arrival_time_est"] else date
        for second in _direct(db, date2, first["destination"], destination, first["scheduled_arrival_time_est"]):
            second["date"] = date2
            results.append([first, second])
    return json.dumps(results)


@tool
def send_certificate(db: Any, user_id: str, amount: float) -> str:
    """Give the user a certificate of `amount` under the first free certificate id."""
    methods = _user(db, user_id)["payment_methods"]
    for payment_id in CERTIFICATE_IDS:
        if payment_id not in methods:
            methods[payment_id] = {"source": "certificate", "id": payment_id, "amount": float(amount)}
            return f"Certificate {payment_id} added to user {user_id} with amount {amount}."
    raise ToolError("Too many certificates")


@tool
def update_reservation_baggages(
    db: Any, reservation_id: str, total_baggages: int, nonfree_baggages: int, payment_id: str
) -> str:
    """Set the bag counts; only added non-free bags are charged."""
    reservation = _reservation(db, reservation_id)
    user = _user(db, reservation["user_id"])
    total_price = BAG_FEE * max(0, nonfree_baggages - reservation["nonfree_baggages"])
    payment = _update_payment(user, payment_id, total_price)
    if payment is not None:
        reservation["payment_history"].append(payment)
    reservation["total_baggages"] = total_baggages
    reservation["nonfree_baggages"] = nonfree_baggages
    return json.dumps(reservation)


@tool
def update_reservation_flights(db: Any, reservation_id: str, cabin: str, flights: list[dict], payment_id: str) -> str:
    """Replace the reservation's flights (the whole new itinerary) and cabin, charging or refunding the difference."""
    reservation = _reservation(db, reservation_id)
    user = _user(db, reservation["user_id"])
    n_passengers = len(reservation["passengers"])
    legs, total_price = [], 0
    for info in flights:
        number = _flight(db, info["flight_number"])["flight_number"]
        kept = next((
            f for f in reservation["flights"]
            if f["flight_number"] == number and f["date"] == info["date"] and cabin == reservation["cabin"]
        ), None)
        leg = copy.deepcopy(kept) if kept is not None else _new_leg(db, number, info["date"], cabin, n_passengers)[0]
        total_price += leg["price"] * n_passengers
        legs.append(leg)
    total_price -= sum(f["price"] for f in reservation["flights"]) * n_passengers
    payment = _update_payment(user, payment_id, total_price)
    if payment is not None:
        reservation["payment_history"].append(payment)
    reservation["flights"] = legs
    reservation["cabin"] = cabin
    return json.dumps(reservation)


@tool
def update_reservation_passengers(db: Any, reservation_id: str, passengers: list[dict]) -> str:
    """Replace the passenger list; the number of passengers cannot change."""
    reservation = _reservation(db, reservation_id)
    _replace_passengers(reservation, passengers, tau2=True)
    return json.dumps(reservation)


@tool
def get_flight_status(db: Any, flight_number: str, date: str) -> str:
    """The status string of a flight on a date ("available", "landed", "cancelled", ...)."""
    return _day(_flight(db, flight_number), date, flight_number)["status"]


TOOLS_TAU2: dict[str, Tool] = {
    "book_reservation": book_reservation,
    "calculate": calculate_tau2,
    "cancel_reservation": cancel_reservation,
    "get_flight_status": get_flight_status,
    "get_reservation_details": get_reservation_details,
    "get_user_details": get_user_details,
    "list_all_airports": list_all_airports,
    "search_direct_flight": search_direct_flight,
    "search_onestop_flight": search_onestop_flight,
    "send_certificate": send_certificate,
    "transfer_to_human_agents": transfer_to_human_agents,
    "update_reservation_baggages": update_reservation_baggages,
    "update_reservation_flights": update_reservation_flights,
    "update_reservation_passengers": update_reservation_passengers,
}
