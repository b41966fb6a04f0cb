"""A deterministic, model-free TauBench customer (see :class:`ScriptedUser`)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from hero_gym.envs.tau.users import STOP, TRANSFER, User, _field, task_instruction, task_version

_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_USER_ID = re.compile(r"\b[a-z]+(?:_[a-z]+)+_\d{4}\b")
_NAME = re.compile(r"(?:[Yy]our name is|[Yy]ou are) ([A-Z][\w'-]+(?: [A-Z][\w'-]+)+)")
_ZIP = re.compile(r"(?:zip(?: code)?(?: is)?|\bin) (\d{5})\b")
_ORDER_ID = re.compile(r"#W\d{7}")
# Reservation codes are 6 upper-case letters/digits; flight numbers (HAT123) look alike and are excluded.
_RES_ID = re.compile(r"\b(?!HAT\d{3}\b)(?=[A-Z0-9]*\d)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{6}\b")

_IDENTITY_SENT = re.compile(r"your name is|zip code|user id|\byour email\b|^you are [A-Z][a-z]+ [A-Z]|^you are [a-z]+_",
                            re.I)
_GOAL_WORDS = re.compile(r"\b(want|wish|need|would like|'d like|return|exchange|cancel|modify|change|book|upgrade|"
                         r"downgrade|refund|received)\b", re.I)
_META = re.compile(r"\b(this|the) instruction\b|\bparaphrase\b|\bmake sure to mention\b", re.I)
_UNKNOWN = re.compile(r"\b(?:do not|don't|not|never) (?:remember|know|recall)\b", re.I)
_NOT_REVEAL = re.compile(r"(?:do not|don't|does not|doesn't) want to (?:reveal|provide|share)", re.I)

# Agent-message patterns, each checked in the precedence order documented on ScriptedUser.
_ASKING = re.compile(r"\?|\b(please|could you|can you|would you|may i|let me know|provide|share|tell me)\b", re.I)
_EXPLICIT_CONFIRM = re.compile(
    r"\(yes/no\)|\byes or no\b|\byes/no\b|\bshall i\b|\bshould i\b|\bdo you want me to\b|\bwould you like me to\b|"
    r"\bwant me to (?:go ahead|proceed)\b|\bproceed\b|\bgo ahead\b", re.I)
_SOFT_CONFIRM = re.compile(r"\bconfirm\b|\bis (?:this|that|everything) (?:correct|right|accurate)\b|\bare you sure\b",
                           re.I)
_ID_ASK = re.compile(r"\b(e-?mail|zip|postal|(?:full |first |last )?name|user ?id|user_id|account)\b", re.I)
_TRANSFER = re.compile(r"\btransferr?(?:ing|ed)?\b.{0,40}\b(?:human|live|another|representative|specialist|agent)\b",
                       re.I)
_FAILURE = re.compile(r"\b(?:cannot|can't|can not|unable to|not able to|not possible|not allowed|am not permitted|"
                      r"don't have the ability|do not have the ability|against (?:our |the )?policy)\b", re.I)
_DONE = re.compile(r"\b(?:has|have) been (?:successfully )?(?:cancell?ed|returned|exchanged|modified|updated|changed|"
                   r"booked|processed|placed|refunded|sent|submitted|added|upgraded|downgraded|completed)\b|"
                   r"\bsuccessfully\b|\bis (?:now )?complete\b|\ball set\b|\banything else\b", re.I)

# (agent trigger, instruction keywords, reply when the instruction says nothing on it)
_TOPICS: list[tuple[re.Pattern, re.Pattern, str]] = [
    (re.compile(r"\border (?:id|number)\b|\bwhich order\b|\border #", re.I), _ORDER_ID,
     "I don't remember the order id. Could you look it up in my account?"),
    (re.compile(r"\b(?:reservation|booking|confirmation) (?:id|number|code)\b|\bwhich (?:reservation|trip)\b", re.I),
     _RES_ID, "I don't remember the reservation id. Could you look it up in my account?"),
    (re.compile(r"\bpayment\b|\bpay\b|\brefund\b|\bcard\b|\bpaypal\b|\bcertificate\b", re.I),
     re.compile(r"\bpay|refund|card\b|paypal|certificate|gift_card|credit_card", re.I),
     "I don't have a preference for the payment method."),
    (re.compile(r"\breason\b|\bwhy\b", re.I), re.compile(r"\bbecause\b|\breason\b|\bsince\b|\bdue to\b", re.I),
     "I'd rather not go into the reason."),
    (re.compile(r"\baddress\b", re.I), re.compile(r"\baddress\b", re.I), "I'd like to keep my current address."),
    (re.compile(r"\b(?:cabin|class|economy|business)\b", re.I), re.compile(r"\b(?:cabin|economy|business|class)\b",
                                                                          re.I), "I don't mind about the cabin."),
    (re.compile(r"\bbag(?:s|gage|gages)?\b|\bluggage\b", re.I), re.compile(r"\bbag", re.I), "No extra bags, thanks."),
    (re.compile(r"\binsurance\b", re.I), re.compile(r"\binsurance\b", re.I), "I don't need insurance."),
    (re.compile(r"\bpassengers?\b", re.I), re.compile(r"\bpassenger", re.I), "Just the passengers already on it."),
    (re.compile(r"\b(?:items?|products?|options?|size|color|colour|which one)\b", re.I),
     re.compile(r"\b(?:return|exchange|modify|change|item|size|color|colour|prefer)\b", re.I),
     "Those are the items I mentioned."),
    (re.compile(r"\b(?:date|when|flight|depart|fly|trip|destination|origin)\b", re.I),
     re.compile(r"\b(?:fly|flight|trip|may \d|date|depart|from|to [A-Z])\b", re.I),
     "I mentioned all I know about the trip."),
]

_ACTION = re.compile(r"\b(?:cancel|return|exchange|modify|change|book|update|upgrade|downgrade|add|remove)\b", re.I)
_IMPERATIVE = re.compile(r"(?:Cancel|Return|Exchange|Modify|Change|Book|Update)\b")
_FALLBACKS = ("Could you help me with that, please?", "Can we continue with my request?",
              "What else do you need from me to get this done?")
_FIRST_PERSON = [
    (re.compile(r"\byou'd\b", re.I), "I'd"), (re.compile(r"\byou're\b", re.I), "I'm"),
    (re.compile(r"\byou've\b", re.I), "I've"), (re.compile(r"\byou'll\b", re.I), "I'll"),
    (re.compile(r"\byou are\b", re.I), "I am"), (re.compile(r"\byou were\b", re.I), "I was"),
    (re.compile(r"\byourself\b", re.I), "myself"), (re.compile(r"\byours\b", re.I), "mine"),
]


# Words that follow "you" as a subject ("the trip you want", "things you need").
_VERBS = ("want|wants|wanted|need|needed|have|had|will|would|can|could|should|do|did|don't|didn't|think|thought|know|"
          "prefer|like|wish|feel|get|got|go|live|believe|remember|recall|made|make|paid|pay|plan|planned|booked|"
          "ordered|received|bought|used|placed|hope|expect|also|just|only|still|really|already|recently|may|might|"
          "must|realize|realized|decide|decided|called|spoke|said|say|see|saw|took|take|travel|fly|flew|mention|"
          "insist|try|tried|care|mind|agree|accept")
_MANNER = re.compile(r"(?:Be|Try|Act|Pretend|Emphasi[sz]e|Insist|Do not|Don't)\b")


def first_person(text: str) -> str:
    """Rewrite an instruction sentence from "you" (the brief's voice) to "I" (the customer's voice)."""
    for pat, rep in _FIRST_PERSON:
        text = pat.sub(rep, text)
    text = re.sub(r"\bYour\b", "My", text)
    text = re.sub(r"\byour\b", "my", text)
    # "you" is the subject after a clause boundary and the object elsewhere ("tells you" -> "tells me").
    text = re.sub(r"(^|[,;:(]\s*|\b(?:and|but|or|if|that|so|then|because|when|since|unless|as|do|does|did|can|"
                  r"could|would|will|should|shall|may|might|must|have|had)\s+)you\b",
                  lambda m: m.group(1) + "I", text, flags=re.I)
    text = re.sub(r"\byou(?= (?:" + _VERBS + r")\b)", "I", text, flags=re.I)
    text = re.sub(r"\byou\b", "me", text, flags=re.I)
    return text[:1].upper() + text[1:] if text else text


@dataclass
class _Identity:
    name: str | None = None
    zip: str | None = None
    email: str | None = None
    user_id: str | None = None


class ScriptedUser(User):
    """A rule-based customer: deterministic, offline, never raises on agent text.

    On ``reset(task, seed, user_record=None)`` it reads the task's instruction (v1) or scenario (tau2), splits it
    into sentences and sorts them into identity sentences (name / zip / email / user id; a trailing ", you want…"
    clause is kept as a goal), persona, manner and meta sentences ("You are calm", "Be insistent…", "Try to
    paraphrase…"), "don't remember" sentences, conditional sentences ("If the agent…") and goal sentences
    (everything else). Its identity is taken from `user_record` (the DB user: name, address.zip,
    email) and the task's `user_id`, completed from the instruction text; a fact the instruction says the customer
    does not remember ("You do not remember your email") is never given out.

    Opening message: ``"Hi! " +`` the goal sentences rewritten in the first person (identity, persona, meta and
    conditional sentences left out); ``"Hi! I need some help with my account."`` if there are none.

    Each ``step(agent_message)`` applies the first matching rule (patterns are case-insensitive):

    1. Conversation already ended, or ``max_turns`` replies given: ``###STOP###``.
    2. Explicit confirmation request ("(yes/no)", "proceed", "go ahead", "shall I", "would you like me to"…):
       ``"Yes, please go ahead."``.
    3. The agent asks (a "?" or "please/could you/provide…") for identity (email, zip, name, user id, account):
       the asked facts it knows: email if asked for (or if nothing specific is asked and the instruction gave
       one), else name and zip, else user id; "I don't remember my …" for what it does not know.
    4. The agent asks about a detail topic (order id, reservation id, payment, reason, address, cabin, bags,
       insurance, passengers, items, dates/flights): up to two instruction sentences with that topic's keywords
       (order/reservation ids quoted directly), first person; else the topic's fixed "don't know / no preference"
       line.
    5. A softer confirmation ("confirm", "is that correct", "are you sure"): ``"Yes, that's correct."``.
    6. The agent offers a transfer to a human/another agent: ``###STOP###`` (tau2: ``###TRANSFER###``).
    7. The agent says it cannot do it ("cannot", "unable to", "not possible", "against policy"…):
       ``"I understand. Thanks anyway. ###STOP###"``.
    8. The agent reports completion ("has been cancelled/returned/…", "successfully", "anything else"): the
       goal sentences that ask for an action (cancel/return/exchange/modify/change/book/update/…; at least one)
       are the parts of the request; the report settles the parts whose order/reservation ids it names, or the
       next open part when it names none. Parts left: ``"Thanks! I also asked for this: <next part>"``; none left:
       ``"Thank you, that's all I needed. ###STOP###"``.
    9. Otherwise a nudge chosen by the seeded rng from a fixed list; after ``max_idle`` consecutive nudges
       (no rule 2-5 fired in between) ``###STOP###``.
    """

    name = "scripted"

    def __init__(self, max_idle: int = 3, max_turns: int = 30):
        if max_idle < 1 or max_turns < 1:
            raise ValueError("max_idle and max_turns must be >= 1")
        self.max_idle = max_idle
        self.max_turns = max_turns
        self._reset_state()

    def _reset_state(self) -> None:
        self.identity = _Identity()
        self.unknown: set[str] = set()
        self.goal: list[str] = []
        self.facts: list[str] = []  # every non-identity sentence, searched by topic keywords
        self.version = "v1"
        self.rng = random.Random(0)
        self.turns = 0
        self.idle = 0
        self.ended = False
        self.confirmations = 0
        self.pending: list[str] = []
        self.brief_has_email = False

    # ---------------------------------------------------------------------------------------------- reset
    def reset(self, task: Any, seed: int | None = None, *, user_record: dict | None = None) -> str:
        self._reset_state()
        self.rng = random.Random(seed if seed is not None else 0)
        self.version = task_version(task)
        # A line break inside a sentence (tau2 scenarios wrap lines) is not a sentence boundary.
        text = re.sub(r"(?<![.!?:\n])\n(?!\n)", " ", task_instruction(task))
        self._read_identity(text, task, user_record)
        for raw in _SENT_SPLIT.split(text):
            sent = raw.strip()
            if not sent:
                continue
            if _IDENTITY_SENT.search(sent):
                # "You are mei_kovacs_8020 (zip code 28236) and you want to exchange…": keep the goal half.
                m = re.search(r"(?:,|\band)\s+(you\b.*)", sent, re.I)
                if m and _GOAL_WORDS.search(m.group(1)):
                    self.goal.append(m.group(1))
                    self.facts.append(m.group(1))
                continue
            if not re.search(r"[A-Za-z]", sent):
                continue
            self.facts.append(sent)
            if _MANNER.match(sent):
                continue
            if _UNKNOWN.search(sent) or _NOT_REVEAL.search(sent) or _META.search(sent):
                continue
            if re.match(r"(?:if|when|once|after)\b", sent, re.I):
                continue
            if re.match(r"you are\b", sent, re.I) and not _GOAL_WORDS.search(sent):
                continue  # persona
            self.goal.append(sent)
        self.pending = [s for s in self.goal if _ACTION.search(s)] or self.goal[:1]
        if not self.goal:
            return "Hi! I need some help with my account."
        return "Hi! " + " ".join(self._voice(s) for s in self.goal)

    @staticmethod
    def _voice(sent: str) -> str:
        # Train briefs are imperative ("Cancel order #W… because …"); a customer would ask politely.
        if _IMPERATIVE.match(sent):
            return "Please " + sent[0].lower() + sent[1:]
        return first_person(sent)

    def _read_identity(self, text: str, task: Any, record: dict | None) -> None:
        ident = self.identity
        if isinstance(record, dict):
            name = record.get("name")
            if isinstance(name, dict):
                full = " ".join(str(name.get(k, "")).strip() for k in ("first_name", "last_name")).strip()
                ident.name = full or None
            elif isinstance(name, str) and name.strip():
                ident.name = name.strip()
            address = record.get("address")
            if isinstance(address, dict) and address.get("zip"):
                ident.zip = str(address["zip"])
            if isinstance(record.get("email"), str):
                ident.email = record["email"]
            if isinstance(record.get("user_id"), str):
                ident.user_id = record["user_id"]
        uid = _field(task, "user_id")
        if isinstance(uid, str) and uid:
            ident.user_id = ident.user_id or uid
        if ident.name is None and (m := _NAME.search(text)):
            ident.name = m.group(1)
        if ident.zip is None and (m := _ZIP.search(text)):
            ident.zip = m.group(1)
        if ident.email is None and (m := _EMAIL.search(text)):
            ident.email = m.group(0)
        if ident.user_id is None and (m := _USER_ID.search(text)):
            ident.user_id = m.group(0)
        for sent in _SENT_SPLIT.split(text):
            if _UNKNOWN.search(sent):
                for key, pat in (("email", r"e-?mail"), ("zip", r"zip|postal"), ("user_id", r"user ?id")):
                    if re.search(pat, sent, re.I):
                        self.unknown.add(key)
        # What the brief itself states is what the customer would lead with when asked to identify.
        self.brief_has_email = bool(_EMAIL.search(text))

    # ---------------------------------------------------------------------------------------------- step
    def step(self, agent_message: str) -> str:
        try:
            return self._step(agent_message)
        except Exception:  # a customer never crashes the episode; an unforeseen case just ends the talk
            self.ended = True
            return STOP

    def _step(self, agent_message: Any) -> str:
        msg = agent_message if isinstance(agent_message, str) else str(agent_message)
        self.turns += 1
        if self.ended or self.turns > self.max_turns:
            return self._end(STOP)
        asking = bool(_ASKING.search(msg))
        if _EXPLICIT_CONFIRM.search(msg) and asking:
            return self._progress(self._confirm("Yes, please go ahead."))
        if asking and (reply := self._identity_reply(msg)):
            return self._progress(reply)
        if asking and (reply := self._detail_reply(msg)):
            return self._progress(reply)
        if _SOFT_CONFIRM.search(msg) and asking:
            return self._progress(self._confirm("Yes, that's correct."))
        if _TRANSFER.search(msg):
            return self._end(TRANSFER if self.version == "tau2" else STOP)
        if _FAILURE.search(msg):
            return self._end(f"I understand. Thanks anyway. {STOP}")
        if _DONE.search(msg):
            return self._completed(msg)
        self.idle += 1
        if self.idle >= self.max_idle:
            return self._end(STOP)
        return self.rng.choice(_FALLBACKS)

    def _completed(self, msg: str) -> str:
        # A brief may ask for several things; the agent's report covers the parts whose ids it names (or the
        # next part when it names none), and the customer reminds it of what is left before saying goodbye.
        said = set(_ORDER_ID.findall(msg)) | set(_RES_ID.findall(msg))
        covered = [s for s in self.pending if said & (set(_ORDER_ID.findall(s)) | set(_RES_ID.findall(s)))]
        for s in covered or self.pending[:1]:
            self.pending.remove(s)
        if not self.pending:
            return self._end(f"Thank you, that's all I needed. {STOP}")
        self.idle = 0
        return "Thanks! I also asked for this: " + self._voice(self.pending[0])

    def _end(self, text: str) -> str:
        self.ended = True
        return text

    def _progress(self, text: str) -> str:
        self.idle = 0
        return text

    def _confirm(self, text: str) -> str:
        self.confirmations += 1
        return text

    def _identity_reply(self, msg: str) -> str | None:
        asked = {m.lower() for m in _ID_ASK.findall(msg)}
        if not asked:
            return None
        ident, parts = self.identity, []
        want_email = any("mail" in a for a in asked)
        want_zip = any(a in ("zip", "postal") for a in asked)
        want_name = any(a.endswith("name") for a in asked)
        want_uid = any(a.replace(" ", "").replace("_", "") == "userid" for a in asked)
        either = want_email and (want_name or want_zip) and " or " in msg.lower()
        if either or not (want_email or want_zip or want_name or want_uid):
            # "email, or name and zip" / "your account": offer one way, the one the brief itself states.
            by_email = (self.brief_has_email and "email" not in self.unknown) or not self.identity.name
            want_email, want_name, want_zip = by_email, not by_email, not by_email
        if want_email:
            parts.append(self._fact("email", ident.email, "email is {}"))
        if want_name and ident.name:
            parts.append(f"my name is {ident.name}")
        if want_zip:
            parts.append(self._fact("zip", ident.zip, "zip code is {}"))
        if want_uid:
            parts.append(self._fact("user_id", ident.user_id, "user id is {}"))
        if want_name and not ident.name and not parts:
            parts.append("I'd rather identify myself another way")
        parts = [p for p in parts if p]
        if not parts:
            return None
        text = " and ".join(parts)
        return text[:1].upper() + text[1:] + "."

    def _fact(self, key: str, value: str | None, template: str) -> str:
        if value is None or key in self.unknown:
            return f"I don't remember my {key.replace('_', ' ')}"
        return "my " + template.format(value)

    def _detail_reply(self, msg: str) -> str | None:
        for trigger, keywords, fallback in _TOPICS:
            if not trigger.search(msg):
                continue
            if keywords in (_ORDER_ID, _RES_ID):
                ids = list(dict.fromkeys(i for s in self.facts for i in keywords.findall(s)))
                return f"It's {', '.join(ids)}." if ids else fallback
            hits = [s for s in self.facts if keywords.search(s)][:2]
            return " ".join(first_person(s) for s in hits) if hits else fallback
        return None
