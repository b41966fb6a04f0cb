"""Airline tools on the real v1 / tau2 data: exact observations, error branches, mutations, upstream quirks.

Expected values come from the published data and upstream's documented behaviour, never from the tools.
"""

import copy
import json

import pytest

from hero_gym.data import load_json
from hero_gym.envs.tau import airline_tools
from hero_gym.envs.tau.db import TauDB

T = airline_tools.TOOLS
T2 = airline_tools.tools("tau2")
DAY = "2024-05-20"  # every flight is bookable on this date in both data versions


def base(table):
    return load_json("tau-v1", f"tau/v1/airline/{table}.json")


def base2(table):
    return load_json("tau2", "tau/tau2/airline/db.json")[table]


@pytest.fixture
def db():
    return TauDB("v1", "airline")


@pytest.fixture
def db2():
    return TauDB("tau2", "airline")


def test_v1_schemas_are_upstream_tools_json():
    assert airline_tools.schemas() == load_json("tau-v1", "tau/v1/airline/tools.json")
    assert [s["function"]["name"] for s in airline_tools.schemas()] == list(T) and len(T) == 14
    assert airline_tools.WRITE_TOOLS < set(T)


def test_tau2_schemas_match_tau2_tool_set():
    names = [s["function"]["name"] for s in airline_tools.schemas("tau2")]
    assert sorted(names) == sorted(T2) and len(names) == 14
    assert "think" not in names and "get_flight_status" in names
    status = next(s for s in airline_tools.schemas("tau2") if s["function"]["name"] == "get_flight_status")
    assert status["function"]["parameters"]["required"] == ["flight_number", "date"]


# ---------------------------------------------------------------------------------------------------- reads
def test_reads_and_the_reservation_error_bug(db):
    assert T["get_reservation_details"](db, reservation_id="R9QDGB") == json.dumps(base("reservations")["R9QDGB"])
    assert T["get_user_details"](db, user_id="mia_li_3668") == json.dumps(base("users")["mia_li_3668"])
    assert T["get_reservation_details"](db, reservation_id="ZZZZZZ") == "Error: user not found"  # sic, upstream
    assert T["get_user_details"](db, user_id="nobody") == "Error: user not found"


def test_list_all_airports(db):
    airports = json.loads(T["list_all_airports"](db))
    assert len(airports) == 20 and airports["JFK"] == "New York" and airports["LGA"] == "LaGuardia"
    assert set(airports) >= {f["origin"] for f in base("flights").values()}


def test_search_direct_flight_lists_available_flights_of_the_day(db):
    out = json.loads(T["search_direct_flight"](db, origin="PHL", destination="LGA", date=DAY))
    expected = [f for f in base("flights").values() if f["origin"] == "PHL" and f["destination"] == "LGA"]
    assert [r["flight_number"] for r in out] == [f["flight_number"] for f in expected] and out
    for r, f in zip(out, expected):
        assert "dates" not in r and r["status"] == "available"
        assert r["prices"] == f["dates"][DAY]["prices"] and r["available_seats"] == f["dates"][DAY]["available_seats"]
        assert r["scheduled_departure_time_est"] == f["scheduled_departure_time_est"]
    # on 2024-05-10 every flight has landed or was cancelled
    assert all(f["dates"]["2024-05-10"]["status"] != "available" for f in expected)
    assert T["search_direct_flight"](db, origin="PHL", destination="LGA", date="2024-05-10") == "[]"
    assert T["search_direct_flight"](db, origin="PHL", destination="LGA", date="2024-13-01") == "[]"


def test_search_onestop_second_leg_reads_first_day(db):
    # HAT002 LGA->PHX lands at 01:30 the next day; HAT009 PHX->SFO leaves at 17:00
    pairs = json.loads(T["search_onestop_flight"](db, origin="LGA", destination="SFO", date=DAY))
    leg1, leg2 = next(p for p in pairs if [p[0]["flight_number"], p[1]["flight_number"]] == ["HAT002", "HAT009"])
    assert leg1["date"] == DAY and leg2["date"] == "2024-05-21"
    hat009 = base("flights")["HAT009"]["dates"]
    assert hat009[DAY]["prices"] != hat009["2024-05-21"]["prices"]
    assert leg2["prices"] == hat009[DAY]["prices"]  # upstream bug: first leg's date used for the second's data
    for first, second in pairs:
        assert first["destination"] == second["origin"] and first["origin"] == "LGA" and second["destination"] == "SFO"
        assert not first["scheduled_arrival_time_est"] > second["scheduled_departure_time_est"]


def _make_available(db, flight_number, date):
    db["flights"][flight_number]["dates"][date] = {
        "status": "available", "available_seats": {"basic_economy": 5, "economy": 5, "business": 5},
        "prices": {"basic_economy": 50, "economy": 100, "business": 200}}


def test_search_onestop_unpadded_next_day_bug(db):
    # "2024-05-01" + overnight first leg -> "2024-05-2", which is no flight date: the pair is never found
    _make_available(db, "HAT002", "2024-05-01")
    _make_available(db, "HAT009", "2024-05-02")
    _make_available(db, "HAT009", "2024-05-01")
    pairs = json.loads(T["search_onestop_flight"](db, origin="LGA", destination="SFO", date="2024-05-01"))
    assert not any(p[0]["flight_number"] == "HAT002" for p in pairs)
    # tau2 keeps the unpadded date too
    db2 = TauDB("tau2", "airline")
    _make_available(db2, "HAT002", "2024-05-01")
    _make_available(db2, "HAT009", "2024-05-02")
    pairs = json.loads(T2["search_onestop_flight"](db2, origin="LGA", destination="SFO", date="2024-05-01"))
    assert not any(p[0]["flight_number"] == "HAT002" for p in pairs)


# ------------------------------------------------------------------------------------------------- booking
def _booking(**over):
    args = dict(
        user_id="mei_hernandez_8984", origin="PHL", destination="LGA", flight_type="one_way", cabin="economy",
        flights=[{"flight_number": "HAT001", "date": DAY}],
        passengers=[{"first_name": "Mei", "last_name": "Hernandez", "dob": "1981-01-11"}],
        payment_methods=[{"payment_id": "gift_card_5309492", "amount": 98},
                         {"payment_id": "credit_card_2140654", "amount": 39}],
        total_baggages=0, nonfree_baggages=0, insurance="no")
    args.update(over)
    return args


def test_book_reservation_prices_charges_and_names(db):
    price = base("flights")["HAT001"]["dates"][DAY]["prices"]["economy"]
    assert price == 137  # the payment split below is written for this price
    args = _booking()
    kept = copy.deepcopy(args)
    out = T["book_reservation"](db, **args)
    assert args == kept  # the caller's lists are not modified or aliased
    res = db["reservations"]["HATHAT"]
    assert out == json.dumps(res)
    assert res["created_at"] == "2024-05-15T15:00:00" and res["reservation_id"] == "HATHAT"
    assert res["flights"] == [{"flight_number": "HAT001", "date": DAY, "price": 137, "origin": "PHL",
                               "destination": "LGA"}]
    assert res["payment_history"] == args["payment_methods"] and "status" not in res
    user = db["users"]["mei_hernandez_8984"]
    assert user["reservations"][-1] == "HATHAT"
    assert user["payment_methods"]["gift_card_5309492"]["amount"] == 0
    assert db["flights"]["HAT001"]["dates"][DAY] == base("flights")["HAT001"]["dates"][DAY]  # v1 keeps the seats
    # a certificate pays once and disappears; the next ids are HATHAU then HATHAV, and a fourth overwrites HATHAV
    cert = _booking(cabin="business", payment_methods=[{"payment_id": "certificate_7502997", "amount": 250},
                                                       {"payment_id": "credit_card_2140654", "amount": 161}])
    assert json.loads(T["book_reservation"](db, **cert))["reservation_id"] == "HATHAU"
    assert "certificate_7502997" not in user["payment_methods"]
    card = _booking(payment_methods=[{"payment_id": "credit_card_2140654", "amount": 137}])
    assert json.loads(T["book_reservation"](db, **card))["reservation_id"] == "HATHAV"
    assert json.loads(T["book_reservation"](db, **_booking(
        insurance="yes", payment_methods=[{"payment_id": "credit_card_2140654", "amount": 167}])))[
        "reservation_id"] == "HATHAV"
    assert user["reservations"][-4:] == ["HATHAT", "HATHAU", "HATHAV", "HATHAV"]


@pytest.mark.parametrize("over, message", [
    ({"user_id": "nobody"}, "Error: user not found"),
    ({"flights": [{"flight_number": "HAT999", "date": DAY}]}, "Error: flight HAT999 not found"),
    ({"flights": [{"flight_number": "HAT001", "date": "2024-06-01"}]},
     "Error: flight HAT001 not found on date 2024-06-01"),
    ({"flights": [{"flight_number": "HAT001", "date": "2024-05-01"}]},
     "Error: flight HAT001 not available on date 2024-05-01"),
    ({"payment_methods": [{"payment_id": "paypal_1", "amount": 137}]}, "Error: payment method paypal_1 not found"),
    ({"payment_methods": [{"payment_id": "gift_card_5309492", "amount": 137}]},
     "Error: not enough balance in payment method gift_card_5309492"),
    ({"nonfree_baggages": 1}, "Error: payment amount does not add up, total price is 187, but paid 137"),
    ({"insurance": "yes"}, "Error: payment amount does not add up, total price is 167, but paid 137"),
])
def test_book_reservation_errors(db, over, message):
    assert T["book_reservation"](db, **_booking(**over)) == message
    assert "HATHAT" not in db["reservations"]
    assert db["users"]["mei_hernandez_8984"]["payment_methods"] == base("users")["mei_hernandez_8984"]["payment_methods"]


def test_book_reservation_seat_check(db):
    db["flights"]["HAT001"]["dates"][DAY]["available_seats"]["economy"] = 0
    assert T["book_reservation"](db, **_booking()) == "Error: not enough seats on flight HAT001"


# ------------------------------------------------------------------------------------------------- changes
def test_cancel_reservation_reverses_payments(db):
    history = base("reservations")["R9QDGB"]["payment_history"]
    out = T["cancel_reservation"](db, reservation_id="R9QDGB")
    res = db["reservations"]["R9QDGB"]
    assert out == json.dumps(res) and res["status"] == "cancelled"
    assert res["payment_history"] == history + [{"payment_id": p["payment_id"], "amount": -p["amount"]} for p in history]
    assert T["cancel_reservation"](db, reservation_id="NOPE00") == "Error: reservation not found"


def test_send_certificate_fills_three_ids_then_errors(db):
    msgs = [T["send_certificate"](db, user_id="mia_li_3668", amount=100) for _ in range(3)]
    assert msgs[0] == "Certificate certificate_3221322 added to user mia_li_3668 with amount 100."
    assert msgs[2] == "Certificate certificate_3221324 added to user mia_li_3668 with amount 100."
    methods = db["users"]["mia_li_3668"]["payment_methods"]
    assert methods["certificate_3221323"] == {"source": "certificate", "amount": 100, "id": "certificate_3221323"}
    # upstream returns None here (its env then crashes); we answer with an error instead
    assert T["send_certificate"](db, user_id="mia_li_3668", amount=50) == "Error: too many certificates"
    assert T["send_certificate"](db, user_id="nobody", amount=50) == "Error: user not found"


def test_update_baggages(db):
    ub = T["update_reservation_baggages"]
    assert ub(db, reservation_id="R9QDGB", total_baggages=2, nonfree_baggages=2, payment_id="gift_card_5309492") == (
        "Error: gift card balance is not enough")
    assert ub(db, reservation_id="R9QDGB", total_baggages=2, nonfree_baggages=2, payment_id="certificate_7502997") == (
        "Error: certificate cannot be used to update reservation")
    assert ub(db, reservation_id="R9QDGB", total_baggages=2, nonfree_baggages=2, payment_id="x") == (
        "Error: payment method not found")
    assert ub(db, reservation_id="NOPE00", total_baggages=2, nonfree_baggages=2, payment_id="x") == (
        "Error: reservation not found")
    out = ub(db, reservation_id="R9QDGB", total_baggages=3, nonfree_baggages=1, payment_id="gift_card_5309492")
    res = db["reservations"]["R9QDGB"]
    assert out == json.dumps(res) and (res["total_baggages"], res["nonfree_baggages"]) == (3, 1)
    assert res["payment_history"][-1] == {"payment_id": "gift_card_5309492", "amount": 50}
    assert db["users"]["mei_hernandez_8984"]["payment_methods"]["gift_card_5309492"]["amount"] == 98 - 50
    n = len(res["payment_history"])
    ub(db, reservation_id="R9QDGB", total_baggages=1, nonfree_baggages=0, payment_id="credit_card_2140654")
    assert len(res["payment_history"]) == n  # nothing due, nothing recorded


def test_update_flights_charges_difference_and_keeps_cabin(db):
    res0 = base("reservations")["R9QDGB"]  # economy, 3 passengers, 4 legs
    flights = [{"flight_number": f["flight_number"], "date": f["date"]} for f in res0["flights"]]
    uf = T["update_reservation_flights"]
    same = json.loads(uf(db, reservation_id="R9QDGB", cabin="economy", flights=flights, payment_id="credit_card_2140654"))
    assert same["flights"] == res0["flights"] and same["payment_history"] == res0["payment_history"]
    # move the last leg to another day: priced from the flight table, difference charged to the card
    moved = flights[:3] + [{"flight_number": flights[3]["flight_number"], "date": "2024-05-29"}]
    day = base("flights")[moved[3]["flight_number"]]["dates"]["2024-05-29"]
    assert day["status"] == "available"
    out = uf(db, reservation_id="R9QDGB", cabin="business", flights=moved, payment_id="credit_card_2140654")
    res = db["reservations"]["R9QDGB"]
    assert out == json.dumps(res)
    assert res["cabin"] == "economy"  # v1 never updates the cabin
    new_total = sum(base("flights")[f["flight_number"]]["dates"][f["date"]]["prices"]["business"] for f in moved)
    old_total = sum(f["price"] for f in res0["flights"])
    assert res["payment_history"][-1] == {"payment_id": "credit_card_2140654", "amount": (new_total - old_total) * 3}
    assert db["flights"][moved[3]["flight_number"]]["dates"]["2024-05-29"] == day  # seats untouched
    assert uf(db, reservation_id="R9QDGB", cabin="economy", flights=[{"flight_number": "HAT001", "date": "2024-05-01"}],
              payment_id="credit_card_2140654") == "Error: flight HAT001 not available on date 2024-05-01"
    assert uf(db, reservation_id="R9QDGB", cabin="economy", flights=flights, payment_id="certificate_7502997") == (
        "Error: certificate cannot be used to update reservation")


def test_update_passengers(db):
    up = T["update_reservation_passengers"]
    people = [{"first_name": "A", "last_name": "B", "dob": "2000-01-01"}] * 3
    assert up(db, reservation_id="R9QDGB", passengers=people[:1]) == "Error: number of passengers does not match"
    assert json.loads(up(db, reservation_id="R9QDGB", passengers=people))["passengers"] == people
    assert up(db, reservation_id="NOPE00", passengers=people) == "Error: reservation not found"


# ----------------------------------------------------------------------------------------------------- tau2
def test_tau2_lookups_are_tolerant_and_name_the_id(db2):
    assert T2["get_reservation_details"](db2, reservation_id="r9qdgb") == json.dumps(base2("reservations")["R9QDGB"])
    assert T2["get_user_details"](db2, user_id=" Mia_Li_3668") == json.dumps(base2("users")["mia_li_3668"])
    assert T2["get_reservation_details"](db2, reservation_id="ZZZZZZ") == "Error: Reservation ZZZZZZ not found"
    assert T2["get_user_details"](db2, user_id="nobody") == "Error: User nobody not found"


def test_tau2_flight_status_and_airports(db2):
    assert T2["get_flight_status"](db2, flight_number="HAT018", date="2024-05-11") == "delayed"  # tau2 data change
    assert T2["get_flight_status"](db2, flight_number="hat001", date=DAY) == "available"
    assert T2["get_flight_status"](db2, flight_number="HAT999", date=DAY) == "Error: Flight HAT999 not found"
    assert T2["get_flight_status"](db2, flight_number="HAT001", date="2024-06-01") == (
        "Error: Flight HAT001 not found on date 2024-06-01")
    airports = json.loads(T2["list_all_airports"](db2))
    assert len(airports) == 20 and {"iata": "JFK", "city": "New York"} in airports


def test_tau2_book_takes_seats_and_stops_at_three(db2):
    seats = base2("flights")["HAT001"]["dates"][DAY]["available_seats"]["economy"]
    out = json.loads(T2["book_reservation"](db2, **_booking(user_id="Mei_Hernandez_8984")))
    assert out["user_id"] == "mei_hernandez_8984" and out["reservation_id"] == "HATHAT"
    assert out["flights"] == [{"flight_number": "HAT001", "origin": "PHL", "destination": "LGA", "date": DAY,
                               "price": 137}]
    assert db2["flights"]["HAT001"]["dates"][DAY]["available_seats"]["economy"] == seats - 1
    card = _booking(payment_methods=[{"payment_id": "credit_card_2140654", "amount": 137}])
    T2["book_reservation"](db2, **card)
    T2["book_reservation"](db2, **card)
    assert T2["book_reservation"](db2, **card) == "Error: Too many reservations"
    assert T2["book_reservation"](db2, **_booking(nonfree_baggages=1)) == "Error: Too many reservations"


def test_tau2_book_errors(db2):
    assert T2["book_reservation"](db2, **_booking(flights=[{"flight_number": "HAT001", "date": "2024-05-01"}])) == (
        "Error: Flight HAT001 not available on date 2024-05-01")
    assert T2["book_reservation"](db2, **_booking(nonfree_baggages=1)) == (
        "Error: Payment amount does not add up, total price is 187, but paid 137")


def test_tau2_update_flights_sets_cabin_and_search_reads_second_day(db2):
    res0 = base2("reservations")["R9QDGB"]
    flights = [{"flight_number": f["flight_number"], "date": f["date"]} for f in res0["flights"]]
    out = json.loads(T2["update_reservation_flights"](
        db2, reservation_id="R9QDGB", cabin="business", flights=flights, payment_id="credit_card_2140654"))
    assert out["cabin"] == "business"
    assert [f["price"] for f in out["flights"]] == [
        base2("flights")[f["flight_number"]]["dates"][f["date"]]["prices"]["business"] for f in flights]
    pairs = json.loads(T2["search_onestop_flight"](db2, origin="LGA", destination="SFO", date=DAY))
    leg1, leg2 = next(p for p in pairs if [p[0]["flight_number"], p[1]["flight_number"]] == ["HAT002", "HAT009"])
    assert leg2["date"] == "2024-05-21"
    assert leg2["prices"] == base2("flights")["HAT009"]["dates"]["2024-05-21"]["prices"]
    direct = json.loads(T2["search_direct_flight"](db2, origin="PHL", destination="LGA", date=DAY))
    assert direct and all(r["date"] is None and r["status"] == "available" for r in direct)


def test_tau2_certificates_are_floats_and_limited(db2):
    assert T2["send_certificate"](db2, user_id="mia_li_3668", amount=100) == (
        "Certificate certificate_3221322 added to user mia_li_3668 with amount 100.")
    assert db2["users"]["mia_li_3668"]["payment_methods"]["certificate_3221322"]["amount"] == 100.0
    assert isinstance(db2["users"]["mia_li_3668"]["payment_methods"]["certificate_3221322"]["amount"], float)
    T2["send_certificate"](db2, user_id="mia_li_3668", amount=1)
    T2["send_certificate"](db2, user_id="mia_li_3668", amount=1)
    assert T2["send_certificate"](db2, user_id="mia_li_3668", amount=1) == "Error: Too many certificates"


def test_tau2_change_errors(db2):
    assert T2["update_reservation_baggages"](db2, reservation_id="R9QDGB", total_baggages=1, nonfree_baggages=1,
                                             payment_id="certificate_7502997") == (
        "Error: Certificate cannot be used to update reservation")
    assert T2["update_reservation_passengers"](db2, reservation_id="R9QDGB", passengers=[]) == (
        "Error: Number of passengers does not match")
    assert T2["update_reservation_flights"](db2, reservation_id="R9QDGB", cabin="economy",
                                            flights=[{"flight_number": "HAT999", "date": DAY}],
                                            payment_id="credit_card_2140654") == "Error: Flight HAT999 not found"
    out = json.loads(T2["cancel_reservation"](db2, reservation_id="r9qdgb"))
    assert out["status"] == "cancelled" and db2["reservations"]["R9QDGB"]["status"] == "cancelled"
