"""Seeded demo client: a realistic fictional contact centre with planted ground truth.

Harbour Utilities runs a contact centre of about 60 agents (``AG001``...) in four teams
(Atlas, Beacon, Comet, Delta) over 13 ISO weeks. :func:`generate` writes, into one folder,
the four inputs an audit reads (metric register, contacts export, staff survey, weekly
outcomes), the params file for that folder and ``expected_findings.json``: the findings an
audit must make because they were planted on purpose (see ``docs/architecture.md``,
"The demo client"). ``null=True`` writes the same centre with nothing planted in the data, so
the tests can also check that the audit finds nothing there.

The export is made to look like a client's: a few client-style column names (mapped in the
params file), booleans as ``Y``/``N``, channel names capitalised, realistic gaps (unidentified
callers, uncoded contacts, resolutions still open at the end of the export), round-minute heaping
of handle times in every team, a bank holiday and an outage day.

Everything is vectorised numpy and Arrow, so ``contacts=10_000_000`` stays fast; the same seed
gives byte-identical files.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from .columns import ITEM_BANK, REVERSE_ITEMS, SURVEY_SEP
from .columns import Contact as C
from .columns import Outcome as O
from .columns import Register as R
from .columns import Survey as S
from .demo_header import header_line, read_header
from .errors import ParamsError, RunError

__all__ = [
    "CLIENT", "TEAMS", "SHORT_CONTACT_AGENTS", "DISPLACEMENT_AGENTS", "SURVEY_SELECTION_AGENT",
    "CONTACT_COLUMNS", "SURVEY_LABELS", "QUARTERS", "FILES",
    "generate", "ensure_demo_inputs", "params_text", "expected_findings", "register_table",
]

CLIENT = "Harbour Utilities"
TEAMS = ("Atlas", "Beacon", "Comet", "Delta")
TEAM_SIZES = (16, 15, 15, 14)
N_AGENTS = sum(TEAM_SIZES)
_AGENT_IDS = tuple(f"AG{i + 1:03d}" for i in range(N_AGENTS))
_AGENT_TEAM = tuple(np.repeat(np.arange(len(TEAMS)), TEAM_SIZES).tolist())
WEEKS = 13
DAYS = WEEKS * 7

#: agents whose behaviour is planted (the same agents in both quarters)
SHORT_CONTACT_AGENTS = ("AG014", "AG033", "AG057")
DISPLACEMENT_AGENTS = ("AG005", "AG012")          # both in Atlas
SURVEY_SELECTION_AGENT = "AG049"

#: client column name in the contacts export -> canonical name (written to params `columns`)
CONTACT_COLUMNS = {"Contact Ref": C.CONTACT_ID, "Agent": C.AGENT_ID, "Start Time": C.STARTED_AT,
                   "Channel": C.CHANNEL}
#: survey answers are exported as labels, mapped to scores by params.perception.labels
SURVEY_LABELS = {"strongly disagree": 1, "disagree": 2, "neither agree nor disagree": 3,
                 "agree": 4, "strongly agree": 5}
_LABEL_TEXT = ("Strongly disagree", "Disagree", "Neither agree nor disagree", "Agree", "Strongly agree")

FILES = {"register": "register.csv", "contacts": "contacts.csv", "survey": "survey.csv",
         "outcomes": "outcomes.csv", "params": "params.yaml", "expected": "expected_findings.json"}

_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class _Quarter:
    number: int
    period: str
    start: date

    @property
    def end(self) -> date:
        return self.start + timedelta(days=DAYS - 1)


QUARTERS = {1: _Quarter(1, "2026-Q3", date(2026, 6, 29)), 2: _Quarter(2, "2026-Q4", date(2026, 9, 28))}

# Reduced or closed days (volume factor): UK bank holidays and Christmas week.
_HOLIDAYS = {date(2026, 8, 31): 0.3, date(2026, 12, 24): 0.6, date(2026, 12, 25): 0.0,
             date(2026, 12, 26): 0.25}
# One storm-outage day per quarter (day index): more calls, longer queues, "Outage" reasons.
_OUTAGE_DAY = {1: 36, 2: 23}


@dataclass(frozen=True)
class _Plan:
    """Which behaviours are planted, for one quarter and mode."""
    null: bool
    quarter: int
    bunching: bool = False          # Beacon heaps handle time just under 360 s
    hollow: bool = False            # e-mail first replies <= 60 s that do not resolve anything
    short_calls: bool = False       # 3 agents with many < 10 s voice calls
    displacement: bool = False      # 2 Atlas agents: low AHT, many transfers
    comet_fcr: bool = False         # Comet codes FCR ~90 % while 7-day repeats ~35 %
    callbacks: bool = False         # Beacon keeps ~55 % of promises; unkept -> complaints
    selection: bool = False         # 1 agent offers the CSAT survey selectively
    manager_gap: bool = False       # managers rate AHT ~1.5 points higher than staff
    fcr_trend: tuple = (0.80, 0.80)  # centre-level coded FCR, first -> last week
    beacon_trend: bool = False      # Beacon AHT falls while its repeats rise
    links: bool = False             # RESOLVE -> CSAT (agent-week) and CSAT -> churn (team-week)
    delta_friday: bool = False      # Delta AHT much lower on Fridays
    frt_counterbalance: bool = False  # register: FRT paired with RESOLVE


def _plan(null: bool, quarter: int) -> _Plan:
    frt_pair = quarter == 2
    if null:
        return _Plan(null=True, quarter=quarter, frt_counterbalance=frt_pair)
    common = dict(short_calls=True, displacement=True, comet_fcr=True, callbacks=True,
                  selection=True, manager_gap=True, beacon_trend=True, links=True)
    if quarter == 1:
        return _Plan(null=False, quarter=1, bunching=True, hollow=True, fcr_trend=(0.74, 0.90), **common)
    return _Plan(null=False, quarter=2, fcr_trend=(0.78, 0.92), delta_friday=True,
                 frt_counterbalance=True, **common)


def _rng(seed: int, *stream: int) -> np.random.Generator:
    """An independent random stream per component, so e.g. the survey does not depend on N."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *stream]))


# --------------------------------------------------------------------------------------------
# Register
# --------------------------------------------------------------------------------------------

_REGISTER = [
    # metric_id, name, kpi, target, direction, incentive, counterbalance, owner, purpose, definition, audience, review, data_column
    ("AHT", "Average handle time", "aht", 360, "lower", "bonus", "REPEAT", "Head of Operations",
     "Keep calls efficient so customers reach an adviser quickly, and show where system or process "
     "friction makes calls long, so queues and staffing costs stay under control.",
     "Talk + hold + after-call work per answered call, seconds", "Agents, team leads",
     "2026-03-16", "handle_seconds"),
    ("AHT_TEAM", "Team handle time", "aht", 360, "lower", "none", "REPEAT", "Workforce Planning Manager",
     "Plan staffing per team so customers wait less, by knowing how long each team's calls take.",
     "Talk + hold + after-call work per answered call, seconds, per team", "Team leads",
     "2026-03-16", "handle_seconds"),
    ("FCR", "First contact resolution", "fcr_agent", 0.80, "higher", "bonus", "REPEAT", "Head of Customer Experience",
     "Solve customers' problems the first time so they do not have to chase us, which lowers "
     "effort for customers and avoidable repeat demand.",
     "Share of contacts the adviser codes as resolved at the first contact", "Agents, team leads",
     "2026-02-02", "resolved_first_contact"),
    ("REPEAT", "Repeat contact rate", "repeat_rate", 0.15, "lower", "none", "FCR", "Head of Customer Experience",
     "Find failure demand: customers coming back within a week because their problem was not fixed, "
     "so we can remove its causes.",
     "Share of contacts followed by another contact from the same customer within 7 days", "Managers",
     "2026-02-02", ""),
    ("ASA", "Average speed of answer", "asa", 30, "lower", "recognition", "ABANDON", "Workforce Planning Manager",
     "Answer customers quickly so they are not left waiting on the phone, which drives complaints "
     "and abandoned calls.",
     "Mean queue time of answered calls, seconds", "Team leads, managers", "2026-04-20", "queue_seconds"),
    ("SL", "Service level", "service_level", 0.80, "higher", "none", "ABANDON", "Workforce Planning Manager",
     "Check that staffing matches demand through the day so most customers get through within "
     "20 seconds.",
     "Share of offered calls answered within 20 seconds", "Managers", "2026-04-20", ""),
    ("ABANDON", "Abandonment rate", "abandonment_rate", 0.06, "lower", "none", "ASA", "Workforce Planning Manager",
     "",
     "Share of offered calls where the caller hangs up before an answer", "Managers", "2026-04-20", "abandoned"),
    ("FRT", "First reply time", "first_reply_time", 3600, "lower", "bonus", "", "Digital Channels Manager",
     "Let customers who write to us know quickly that a person is dealing with their request, so "
     "they do not chase us by phone.",
     "Mean time from a customer's e-mail or chat to the first reply, seconds", "Agents, team leads",
     "2026-01-19", "first_reply_seconds"),
    ("RESOLVE", "Resolution time", "resolution_time", 172800, "lower", "none", "CSAT", "Digital Channels Manager",
     "Resolve written requests within two days so customers get their problem fixed and do not "
     "have to contact us again.",
     "Mean time from a customer's e-mail or chat to its resolution, seconds", "Team leads, managers",
     "2026-01-19", "resolution_seconds"),
    ("CALLBACK", "Call-back completion", "callback_completion", 0.95, "higher", "none", "COMPLAINTS",
     "Head of Operations",
     "Keep the promises we make to call customers back, so they trust us and do not have to chase "
     "or complain.",
     "Share of promised call-backs that were made", "Team leads", "2026-03-16", "callback_completed"),
    ("COMPLAINTS", "Complaint rate", "complaint_rate", 0.03, "lower", "none", "CALLBACK", "Customer Relations Manager",
     "Spot where customers are let down badly enough to complain, fix the causes and meet our "
     "regulator's complaint-handling standards.",
     "Share of contacts logged as complaints", "Managers", "2026-05-11", "complaint"),
    ("CSAT", "Customer satisfaction", "csat", 0.80, "higher", "recognition", "AHT", "Head of Customer Experience",
     "Hear from customers how well we served them, so we keep customers with us and learn what "
     "to improve.",
     "Share of post-contact survey answers of 4 or 5 on a 1-5 scale", "Everyone", "2026-02-02", "csat"),
]
METRIC_IDS = tuple(row[0] for row in _REGISTER)
_RESOLVE_TARGET = next(row[3] for row in _REGISTER if row[0] == "RESOLVE")   # seconds


def register_table(quarter: int = 1) -> pd.DataFrame:
    """The metric register of the demo client for a quarter (the same in null mode).

    In quarter 2 FRT gained RESOLVE as its counterbalance; nothing else changed.
    """
    plan = _plan(False, quarter)
    rows = []
    for (mid, name, kpi, target, direction, incentive, pair, owner, purpose, definition,
         audience, review, data_column) in _REGISTER:
        if mid == "FRT" and plan.frt_counterbalance:
            pair = "RESOLVE"
        rows.append({R.METRIC_ID: mid, R.NAME: name, R.KPI: kpi, R.PURPOSE: purpose, R.OWNER: owner,
                     R.TARGET: target, R.DIRECTION: direction, R.DEFINITION: definition,
                     R.INCENTIVE_LINK: incentive, R.AUDIENCE: audience, R.COUNTERBALANCE: pair,
                     R.REVIEW_DATE: review, R.DATA_COLUMN: data_column})
    return pd.DataFrame(rows, columns=list(R.REQUIRED + R.OPTIONAL))


# --------------------------------------------------------------------------------------------
# Agents, calendar
# --------------------------------------------------------------------------------------------

@dataclass
class _Agents:
    ids: list
    team: np.ndarray          # int8 team index
    fte: np.ndarray
    aht_log: np.ndarray       # log multiplier of handle times
    transfer: np.ndarray      # base transfer probability
    csat: np.ndarray          # shift of P(CSAT 4-5)
    response: np.ndarray      # CSAT survey response rate
    roster: np.ndarray = field(default=None)  # (DAYS, 3 day parts, agents) scheduling weight, 0 = off


def _agent_index(agent_id: str) -> int:
    return int(agent_id[2:]) - 1


def _agents(seed: int, quarter: _Quarter) -> _Agents:
    """The staff: traits depend on the seed only (same people in both quarters and modes)."""
    rng = _rng(seed, 1)
    ids = list(_AGENT_IDS)
    team = np.array(_AGENT_TEAM, dtype=np.int8)
    fte = rng.choice(np.array([1.0, 0.8, 0.6]), size=N_AGENTS, p=[0.7, 0.2, 0.1])
    aht_log = rng.normal(0.0, 0.08, N_AGENTS)
    transfer = 0.06 * np.exp(rng.normal(0.0, 0.15, N_AGENTS))
    csat = rng.normal(0.0, 0.02, N_AGENTS)
    response = 0.20 * np.exp(rng.normal(0.0, 0.06, N_AGENTS))
    planted = [_agent_index(a) for a in SHORT_CONTACT_AGENTS + DISPLACEMENT_AGENTS + (SURVEY_SELECTION_AGENT,)]
    fte[planted] = 1.0   # enough contacts to judge them, whatever the seed

    # Roster of the quarter: one weekday or Saturday off a week (Saturday staffed by about half),
    # one block of annual leave, a little sickness. Sunday: e-mails arriving then are picked up
    # by Monday's roster.
    rq = _rng(seed, 2, quarter.number)
    roster = np.zeros((DAYS, N_AGENTS))
    for w in range(WEEKS):
        off = rq.choice(6, size=N_AGENTS, p=[0.1, 0.1, 0.1, 0.1, 0.1, 0.5])
        for d in range(6):
            roster[w * 7 + d] = np.where(off == d, 0.0, fte)
    leave_start = rq.integers(0, DAYS - 14, N_AGENTS)
    leave_len = rq.choice(np.array([7, 14]), N_AGENTS, p=[0.6, 0.4])
    for a in range(N_AGENTS):
        roster[leave_start[a]:leave_start[a] + leave_len[a], a] = 0.0
    roster[rq.random((DAYS, N_AGENTS)) < 0.02] = 0.0
    for w in range(WEEKS):
        roster[w * 7 + 6] = roster[w * 7]
    # shifts: each week an agent works early (08:00-16:00) or late (12:00-20:00); day parts are
    # before noon (early shift only), 12:00-16:00 (both) and after 16:00 (late shift only)
    early = rq.random((WEEKS, N_AGENTS)) < 0.5
    parts = np.zeros((DAYS, 3, N_AGENTS))
    for d in range(DAYS):
        e = early[d // 7]
        parts[d, 0] = roster[d] * e
        parts[d, 1] = roster[d]
        parts[d, 2] = roster[d] * ~e
    uncovered = parts.sum(axis=2) == 0      # everyone on that shift away: the day's staff cover it
    parts[uncovered] = roster[np.nonzero(uncovered)[0]]
    return _Agents(ids, team, fte, aht_log, transfer, csat, response, parts)


# hourly arrival profiles (relative), hours 0..23
def _profile(hours: dict) -> np.ndarray:
    out = np.zeros(24)
    for h, v in hours.items():
        out[h] = v
    return out


_VOICE_WEEKDAY = _profile({8: 0.6, 9: 1.0, 10: 1.18, 11: 1.1, 12: 0.92, 13: 0.9, 14: 1.02, 15: 0.95,
                           16: 0.85, 17: 0.68, 18: 0.48, 19: 0.33})
_VOICE_SATURDAY = _profile({9: 0.8, 10: 1.0, 11: 1.0, 12: 0.85, 13: 0.75, 14: 0.7, 15: 0.6, 16: 0.45})
_CHAT_WEEKDAY = _profile({8: 0.45, 9: 0.8, 10: 0.95, 11: 0.95, 12: 1.05, 13: 1.0, 14: 0.95, 15: 0.9,
                          16: 0.9, 17: 0.95, 18: 0.9, 19: 0.75})
_EMAIL_DAY = _profile({h: v for h, v in zip(range(24), (
    0.08, 0.05, 0.04, 0.04, 0.05, 0.1, 0.25, 0.55, 0.9, 1.1, 1.15, 1.1, 1.05, 1.05, 1.0, 0.95, 0.9,
    0.8, 0.65, 0.55, 0.5, 0.4, 0.28, 0.15))})
_DAY_VOICE = np.array([1.25, 1.10, 1.02, 1.0, 0.93, 0.45, 0.0])
_DAY_EMAIL = np.array([1.2, 1.05, 1.0, 1.0, 0.95, 0.5, 0.35])
_CHANNELS = ("Voice", "Chat", "Email")
_CHANNEL_SHARE = (0.65, 0.15, 0.20)
VOICE, CHAT, EMAIL = 0, 1, 2


def _hour_weights(seed: int, quarter: _Quarter) -> np.ndarray:
    """(3 channels, DAYS*24) arrival weights: weekly and daily patterns, holidays, outage day."""
    rng = _rng(seed, 3, quarter.number)
    week_factor = np.repeat(np.exp(rng.normal(0.0, 0.04, WEEKS)), 7)
    out = np.zeros((3, DAYS * 24))
    for d in range(DAYS):
        dow = d % 7
        day = quarter.start + timedelta(days=d)
        hol = _HOLIDAYS.get(day, 1.0)
        outage = 1.6 if d == _OUTAGE_DAY[quarter.number] else 1.0
        voice_hours = _VOICE_SATURDAY if dow == 5 else _VOICE_WEEKDAY
        chat_hours = _VOICE_SATURDAY if dow == 5 else _CHAT_WEEKDAY
        base = week_factor[d] * hol
        out[VOICE, d * 24:(d + 1) * 24] = base * outage * _DAY_VOICE[dow] * voice_hours
        out[CHAT, d * 24:(d + 1) * 24] = base * _DAY_VOICE[dow] * chat_hours
        out[EMAIL, d * 24:(d + 1) * 24] = base * _DAY_EMAIL[dow] * _EMAIL_DAY
    return out


def _lin(a: float, b: float, week: np.ndarray) -> np.ndarray:
    """Linear trend from a (first week) to b (last week)."""
    return a + (b - a) * week / (WEEKS - 1)


# --------------------------------------------------------------------------------------------
# Contacts
# --------------------------------------------------------------------------------------------

_REASONS = ("Billing query", "Payment", "Meter reading", "Moving home", "Tariff change", "Direct debit",
            "Account update", "Smart meter", "Outage", "Other", "Complaint")
_REASON_P = np.array([0.22, 0.14, 0.10, 0.09, 0.08, 0.09, 0.10, 0.07, 0.05, 0.06])
_COMPLAINT_REASON = len(_REASONS) - 1
_OUTAGE_REASON = _REASONS.index("Outage")


def _lognormal(rng, median: float, sigma: float, size: int, shift=None) -> np.ndarray:
    mu = math.log(median) + (0.0 if shift is None else shift)
    return np.exp(mu + sigma * rng.standard_normal(size, dtype=np.float32))


def _contacts(n: int, seed: int, plan: _Plan, quarter: _Quarter, agents: _Agents) -> dict:
    """Generate the contacts as canonical numpy arrays (index-coded text), sorted by start time."""
    rng = _rng(seed, 10, quarter.number, int(plan.null))
    f32 = np.float32

    # --- arrival times: per channel, hour bins by weekly/daily profile, seconds uniform -------------
    weights = _hour_weights(seed, quarter)
    counts = rng.multinomial(n, _CHANNEL_SHARE)
    t_parts, ch_parts = [], []
    for c in range(3):
        p = weights[c] / weights[c].sum()
        bins = rng.choice(DAYS * 24, size=counts[c], p=p).astype(np.int64)
        t_parts.append(bins * 3600 + rng.integers(0, 3600, counts[c]))
        ch_parts.append(np.full(counts[c], c, dtype=np.int8))
    t = np.concatenate(t_parts)
    ch = np.concatenate(ch_parts)
    del t_parts, ch_parts
    order = np.argsort(t, kind="stable")
    t = t[order]
    ch = ch[order]
    del order
    day = (t // 86400).astype(np.int16)
    week = (day // 7).astype(np.int8)
    dow = (day % 7).astype(np.int8)
    hour = ((t % 86400) // 3600).astype(np.int8)
    voice = ch == VOICE
    chat = ch == CHAT
    email = ch == EMAIL

    # --- agent: drawn from the staff on shift (contacts of a day part are contiguous in time) --------
    agent = np.empty(n, dtype=np.int16)
    u = rng.random(n, dtype=f32)
    part = day.astype(np.int64) * 3 + np.where(hour < 12, 0, np.where(hour < 16, 1, 2))
    bounds = np.searchsorted(part, np.arange(DAYS * 3 + 1))
    del part
    for k in range(DAYS * 3):
        lo, hi = bounds[k], bounds[k + 1]
        if hi > lo:
            cum = np.cumsum(agents.roster[k // 3, k % 3])
            agent[lo:hi] = np.minimum(np.searchsorted(cum / cum[-1], u[lo:hi], side="right"), N_AGENTS - 1)
    team = agents.team[agent]

    def is_agent(ids) -> np.ndarray:
        return np.isin(agent, [_agent_index(a) for a in ids])

    beacon = team == TEAMS.index("Beacon")
    comet = team == TEAMS.index("Comet")

    # shocks: agent-week backlog (slower resolution; lower CSAT when planted) and team-week
    # strain (lower CSAT when planted)
    z_aw = rng.standard_normal((N_AGENTS, WEEKS)).astype(f32)
    u_tw = rng.standard_normal((len(TEAMS), WEEKS)).astype(f32)
    # strain moves between teams from week to week, but the centre as a whole has no good or bad
    # weeks, so centre-level CSAT carries no trend by chance
    u_tw = (u_tw - u_tw.mean(axis=0, keepdims=True)) * f32(math.sqrt(len(TEAMS) / (len(TEAMS) - 1)))
    z = z_aw[agent, week]
    zt = u_tw[team, week]

    # --- voice: queue, abandonment ---------------------------------------------------------------
    busy = (weights[VOICE] / weights[VOICE][weights[VOICE] > 0].mean()).astype(f32)
    busy = np.clip(busy[day.astype(np.int64) * 24 + hour], 0.5, 3.0)
    immediate = rng.random(n, dtype=f32) < 0.70
    wait = np.where(immediate, rng.integers(0, 9, n).astype(f32), rng.exponential(50.0, n).astype(f32) * busy)
    patience = rng.exponential(420.0, n).astype(f32)
    abandoned = voice & (wait > patience)
    queue = np.where(voice, np.rint(np.minimum(wait, patience)), np.nan).astype(f32)
    del wait, patience, immediate, busy
    handled = ~abandoned

    # --- handle times ----------------------------------------------------------------------------
    shift = agents.aht_log[agent].astype(f32)
    # planted agents' own pace is replaced (not added to), so their signature does not depend on the seed
    if plan.displacement:
        shift = np.where(is_agent(DISPLACEMENT_AGENTS), f32(math.log(0.62)), shift)
    if plan.short_calls:
        # slower than usual on real calls: with the hang-ups their AHT looks ordinary
        shift = np.where(is_agent(SHORT_CONTACT_AGENTS), f32(math.log(1.16)), shift)
    if plan.beacon_trend:
        shift = shift + np.where(beacon, np.log(_lin(1.08, 0.80, week)).astype(f32), f32(0))
    if plan.delta_friday:
        shift = shift + np.where((team == TEAMS.index("Delta")) & (dow == 4), f32(math.log(0.6)), f32(0))
    handle = np.empty(n, dtype=f32)
    handle[voice] = _lognormal(rng, 318.0, 0.48, int(voice.sum()), shift[voice])
    handle[chat] = _lognormal(rng, 520.0, 0.50, int(chat.sum()), shift[chat])
    handle[email] = _lognormal(rng, 280.0, 0.60, int(email.sum()), shift[email])
    handle = np.rint(np.clip(handle, 20, 5400))
    del shift

    hv = voice & handled
    # natural round-minute heaping in every team (wrap-up closed on the minute)
    heap = hv & (rng.random(n, dtype=f32) < 0.045)
    handle[heap] = np.maximum(60.0, np.rint(handle[heap] / 60.0) * 60.0)
    if plan.bunching:
        # Beacon agents rush calls that would run a little over the 360 s target
        bunch = hv & beacon & (handle >= 360) & (handle < 500) & (rng.random(n, dtype=f32) < 0.5)
        handle[bunch] = 359.0 - np.floor(rng.beta(1.0, 2.2, int(bunch.sum())) * 45.0)
    acw = np.rint(handle * rng.beta(3.0, 17.0, n).astype(f32))
    hold = np.where(rng.random(n, dtype=f32) < 0.3, np.rint(handle * rng.beta(2.0, 10.0, n).astype(f32)), 0)
    hold = np.minimum(hold, handle - acw)   # talk time is never negative
    # short voice contacts: line drops for everyone, hollow hang-ups for the planted agents
    short = hv & (rng.random(n, dtype=f32) < 0.004)
    if plan.short_calls:
        short |= hv & is_agent(SHORT_CONTACT_AGENTS) & (rng.random(n, dtype=f32) < 0.14)
    handle[short] = rng.integers(2, 10, int(short.sum()))
    acw[short] = 0
    hold[short] = 0
    handle[abandoned] = 0
    acw[abandoned] = 0
    hold[abandoned] = 0
    talk = np.where(voice, handle - acw - hold, np.nan).astype(f32)
    acw = np.where(voice, acw, np.nan).astype(f32)
    hold = np.where(voice, hold, np.nan).astype(f32)

    # --- transfers, call-back promises --------------------------------------------------------------
    p_transfer = agents.transfer[agent].astype(f32)
    if plan.displacement:
        p_transfer = np.where(is_agent(DISPLACEMENT_AGENTS), f32(0.30), p_transfer)
    transferred = (voice | chat) & handled & ~short & (rng.random(n, dtype=f32) < p_transfer)
    del p_transfer
    p_promise = np.where(plan.callbacks & beacon, f32(0.10), f32(0.05))
    promised = hv & ~short & (rng.random(n, dtype=f32) < p_promise)
    p_keep = np.where(plan.callbacks, np.where(beacon, f32(0.55), f32(0.92)), f32(0.95))
    kept = promised & (rng.random(n, dtype=f32) < p_keep)
    unkept = promised & ~kept

    # --- written channels: first reply and resolution ------------------------------------------------
    sod = (t % 86400).astype(f32)
    # the e-mail desk works 08:00-20:00 every day: a message arriving at night waits for the morning
    closed_wait = np.where(sod < 8 * 3600, 8 * 3600 - sod,
                           np.where(sod >= 20 * 3600, 86400 - sod + 8 * 3600, f32(0))).astype(f32)
    first_reply = np.full(n, np.nan, dtype=f32)
    resolution = np.full(n, np.nan, dtype=f32)
    ne = int(email.sum())
    first_reply[email] = closed_wait[email] + _lognormal(rng, 1200.0, 0.8, ne)
    resolution[email] = first_reply[email] + _lognormal(rng, 22 * 3600.0, 1.0, ne)
    if plan.hollow:
        # a "we're on it" reply within a minute that does not move the case on
        hollow = email & (rng.random(n, dtype=f32) < 0.40)
        nh = int(hollow.sum())
        first_reply[hollow] = rng.integers(10, 61, nh)
        resolution[hollow] = _lognormal(rng, 70 * 3600.0, 0.45, nh)
    nc = int(chat.sum())
    first_reply[chat] = _lognormal(rng, 50.0, 0.7, nc)
    escalated = rng.random(nc, dtype=f32) < 0.20
    resolution[chat] = handle[chat] + first_reply[chat] + np.where(
        escalated, _lognormal(rng, 8 * 3600.0, 0.8, nc), f32(0))
    # an agent's backlog weeks resolve slower
    resolution = resolution * np.exp(0.2 * z)
    first_reply = np.rint(first_reply)
    resolution = np.rint(resolution)
    horizon = DAYS * 86400
    # the export is taken two weeks after the quarter: cases still open then have no resolution
    # time, and a few cases were closed without one being recorded
    extracted = horizon + 14 * 86400
    still_open = t + np.nan_to_num(resolution, nan=0) >= extracted
    resolution[still_open | ((email | chat) & (rng.random(n, dtype=f32) < 0.015))] = np.nan
    first_reply[t + np.nan_to_num(first_reply, nan=0) >= extracted] = np.nan
    del still_open
    del closed_wait, sod

    # --- follow-up demand: which contacts bring the same customer back, and when ----------------------
    p_rep = np.full(n, 0.105, dtype=f32)
    if plan.comet_fcr:
        p_rep = np.where(comet, f32(0.34), p_rep)
    if plan.beacon_trend:
        p_rep = np.where(beacon, _lin(0.08, 0.23, week).astype(f32), p_rep)
    if plan.displacement:
        p_rep = np.where(is_agent(DISPLACEMENT_AGENTS), f32(0.17), p_rep)
    p_rep = p_rep + np.where(transferred, f32(0.08), f32(0))
    p_rep = np.where(short, f32(0.35), p_rep)
    p_rep = np.where(abandoned, f32(0.55), p_rep)
    p_cmp = np.full(n, 0.01, dtype=f32)
    p_cmp = np.where(promised, f32(0.06), p_cmp)
    if plan.callbacks:
        p_cmp = np.where(kept, f32(0.05), p_cmp)
        p_cmp = np.where(unkept, f32(0.21), p_cmp)
        p_rep = np.where(unkept, f32(0.30), p_rep)
    p_cmp = np.where(abandoned, f32(0), p_cmp)
    uu = rng.random(n, dtype=f32)
    fu_complaint = uu < p_cmp
    fu_any = uu < (p_cmp + p_rep)
    del uu, p_rep, p_cmp
    src = np.flatnonzero(fu_any)
    ns = src.size
    # When the customer comes back: later the same day (retries of abandoned calls within minutes,
    # other chasers within hours), or on one of the next six days at an ordinary time of that day
    # (a random contact of the day, so follow-ups follow the daily pattern, not the clock).
    sday = day[src].astype(np.int64)
    ab = abandoned[src]
    soon = (ab | (rng.random(ns, dtype=f32) < 0.35)) & ~fu_complaint[src]
    wait = np.where(ab, rng.exponential(1200.0, ns) + 30.0, rng.exponential(9000.0, ns) + 300.0)
    days_later = 1 + np.floor(rng.exponential(np.where(fu_complaint[src], 1.5, 1.3))).astype(np.int64)
    days_later = np.minimum(days_later, 6)
    day_bounds = np.searchsorted(day, np.arange(DAYS + 1))
    base = np.searchsorted(t, t[src] + wait.astype(np.int64))
    same_day = soon & (base < day_bounds[sday + 1])
    # a chaser that would fall after closing time comes back at some time the next day
    target_day = np.where(same_day, sday, np.where(soon, sday + 1, sday + days_later))
    inside = target_day < DAYS          # a follow-up after the end of the quarter is not in the export
    src, base, same_day, target_day = src[inside], base[inside], same_day[inside], target_day[inside]
    lo = day_bounds[target_day]
    hi = np.where(same_day, np.minimum(base + 5, day_bounds[np.minimum(target_day + 1, DAYS)]),
                  day_bounds[np.minimum(target_day + 1, DAYS)])
    lo = np.where(same_day, base, lo)
    del ab, soon, wait, days_later, sday, inside, target_day, base
    parent = np.full(n, -1, dtype=np.int64)
    pending = np.flatnonzero(hi > lo)
    for _ in range(4):   # one parent per follow-up contact: losers of a collision try again
        dst = lo[pending] + (rng.random(pending.size) * (hi[pending] - lo[pending])).astype(np.int64)
        ok = parent[dst] < 0
        cand, dst = pending[ok], dst[ok]
        dst_u, first = np.unique(dst, return_index=True)
        parent[dst_u] = src[cand[first]]
        won = np.zeros(src.size, dtype=bool)
        won[cand[first]] = True
        pending = pending[~won[pending]]
    del lo, hi, pending, same_day
    dst = np.flatnonzero(parent >= 0)
    has_fu = np.zeros(n, dtype=bool)
    has_fu[parent[dst]] = True
    complaint_fu = dst[fu_complaint[parent[dst]]]
    del fu_any, fu_complaint

    # --- reasons and complaints -------------------------------------------------------------------------
    reason = rng.choice(len(_REASON_P), size=n, p=_REASON_P / _REASON_P.sum()).astype(np.int8)
    outage_day = day == _OUTAGE_DAY[quarter.number]
    reason = np.where(outage_day & (rng.random(n, dtype=f32) < 0.45), np.int8(_OUTAGE_REASON), reason)
    # a follow-up is about the same issue as the contact that started its chain: find each
    # contact's root by pointer jumping (parents always come earlier, so there are no cycles)
    root = np.where(parent >= 0, parent, np.arange(n))
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    reason = reason[root]
    complaint = handled & (rng.random(n, dtype=f32) < 0.012)
    complaint[complaint_fu] = True
    complaint &= handled
    reason = np.where(complaint, np.int8(_COMPLAINT_REASON), reason)
    reason_missing = rng.random(n, dtype=f32) < 0.02

    # --- customers: follow-ups keep the customer of their chain's root -----------------------------
    # The customer base: occasional callers (most customers), regular callers, and a small pool of
    # heavy callers (letting agents, business accounts) that contact the centre most weeks. The
    # chance that two unrelated contacts of one customer fall within a week stays near 6 %.
    pools = ((0.70, 2.6), (0.27, 0.3), (0.03, 0.003))   # (share of issues, pool size per contact)
    sizes = [max(10, int(round(k * n))) for _, k in pools]
    which = np.searchsorted(np.cumsum([sh for sh, _ in pools])[:-1], rng.random(n, dtype=f32), side="right")
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    sizes_a = np.array(sizes, dtype=np.int64)
    cust_draw = offsets[which] + (rng.random(n) * sizes_a[which]).astype(np.int64)
    m = int(sizes_a.sum())
    # spread the pools over the id range with a fixed bijection, so heavy callers are not C1000000x
    mult = 2_654_435_761 % m or 1
    while math.gcd(mult, m) != 1:
        mult += 1
    customer = ((cust_draw[root] * mult + 7919) % m).astype(np.int64)
    del cust_draw, which, root
    customer[rng.random(n, dtype=f32) < 0.03] = -1   # unidentified callers / web forms

    # --- agent-coded first contact resolution ----------------------------------------------------------
    lo_fcr, hi_fcr = plan.fcr_trend
    if plan.comet_fcr:
        # Comet's share of the centre is about a quarter; the other teams carry the climb
        target_fcr = np.where(comet, _lin(lo_fcr + 0.13, hi_fcr + 0.03, week),
                              _lin(lo_fcr - 0.045, hi_fcr - 0.01, week)).astype(f32)
    else:
        target_fcr = np.full(n, lo_fcr, dtype=f32) if lo_fcr == hi_fcr else _lin(lo_fcr, hi_fcr, week).astype(f32)
    # share of contacts with a follow-up, so that the coded rate lands on the target on average
    fu_share = f32(has_fu[handled & ~comet].mean() if plan.comet_fcr else has_fu[handled].mean())
    p_code = np.where(has_fu, np.maximum(f32(0.05), target_fcr - f32(0.45)),
                      np.minimum(f32(0.99), target_fcr + f32(0.45) * fu_share / (1 - fu_share)))
    if plan.comet_fcr:
        p_code = np.where(comet, target_fcr, p_code)   # coded resolved whatever happens next
    fcr = handled & (rng.random(n, dtype=f32) < p_code)
    fcr_missing = abandoned | (rng.random(n, dtype=f32) < 0.015)
    del p_code, target_fcr

    # --- customer surveys ------------------------------------------------------------------------------
    p_resp = agents.response[agent].astype(f32)
    p_top = f32(0.79) + agents.csat[agent].astype(f32)
    if plan.links:
        p_top = p_top - f32(0.07) * z - f32(0.06) * zt
        p_top = p_top - np.where((email | chat) & (resolution > _RESOLVE_TARGET), f32(0.15), f32(0))
    if plan.selection:
        sel = agent == _agent_index(SURVEY_SELECTION_AGENT)
        p_resp = np.where(sel, f32(0.045), p_resp)
        p_top = np.where(sel, f32(0.97), p_top)
    p_top = np.clip(p_top, 0.02, 0.99)
    responded = handled & (rng.random(n, dtype=f32) < p_resp)
    top = rng.random(n, dtype=f32) < p_top
    score_hi = np.where(rng.random(n, dtype=f32) < 0.55, 5, 4)
    score_lo = rng.choice(np.array([1, 2, 3]), size=n, p=[0.3, 0.25, 0.45])
    csat = np.where(top, score_hi, score_lo).astype(np.int8)
    del p_resp, p_top, top, score_hi, score_lo
    nps_resp = handled & (rng.random(n, dtype=f32) < 0.10)
    nps = rng.choice(11, size=n, p=np.array([2, 1, 1, 2, 2, 4, 6, 12, 14, 18, 20]) / 82.0).astype(np.int8)

    # small export gaps: component times missing on a few voice rows
    comp_missing = voice & (rng.random(n, dtype=f32) < 0.005)
    talk[comp_missing] = np.nan
    hold[comp_missing] = np.nan
    acw[comp_missing] = np.nan

    return {
        "t": t, "week": week, "dow": dow, "channel": ch, "agent": agent, "team": team, "customer": customer,
        "reason": reason, "reason_missing": reason_missing, "handle": handle, "talk": talk, "hold": hold,
        "acw": acw, "queue": queue, "abandoned": abandoned, "first_reply": first_reply,
        "resolution": resolution, "fcr": fcr, "fcr_missing": fcr_missing, "transferred": transferred,
        "promised": promised, "kept": kept, "complaint": complaint, "csat": csat, "csat_resp": responded,
        "nps": nps, "nps_resp": nps_resp, "voice": voice,
    }


def _ints(values: np.ndarray, type_=pa.int32()) -> pa.Array:
    """Integer Arrow column from float seconds (NaN -> null)."""
    missing = np.isnan(values) if values.dtype.kind == "f" else np.zeros(values.size, bool)
    return pa.array(np.nan_to_num(values, nan=0).astype(np.int64), type=pa.int64(),
                    mask=missing).cast(type_)


def _contacts_table(c: dict, agents: _Agents, quarter: _Quarter, native: bool) -> pa.Table:
    """The export as Arrow: client column names; Y/N text (CSV) or native types (Parquet)."""
    n = c["t"].size
    start = datetime(quarter.start.year, quarter.start.month, quarter.start.day)
    epoch = int((start - datetime(1970, 1, 1)).total_seconds())
    ids = pc.binary_join_element_wise("HU", pc.cast(pa.array(np.arange(n, dtype=np.int64)
                                                             + 40_000_001 + 50_000_000 * (quarter.number - 1)),
                                                    pa.string()), "")
    agent = pa.DictionaryArray.from_arrays(pa.array(c["agent"]), pa.array(agents.ids))
    team = pa.DictionaryArray.from_arrays(pa.array(c["team"]), pa.array(TEAMS))
    channel = pa.DictionaryArray.from_arrays(pa.array(c["channel"]), pa.array(_CHANNELS))
    cust = c["customer"]
    customer = pc.binary_join_element_wise(
        "C", pc.cast(pa.array(cust + 10_000_000, mask=cust < 0), pa.string()), "")
    reason = pa.DictionaryArray.from_arrays(pa.array(c["reason"], mask=c["reason_missing"]), pa.array(_REASONS))
    started = pa.array(c["t"] + epoch, type=pa.timestamp("s"))
    voice = c["voice"]
    not_voice = ~voice
    abandoned = c["abandoned"]

    def flag(values: np.ndarray, missing: np.ndarray | None = None):
        missing = np.zeros(n, bool) if missing is None else missing
        if native:
            return pa.array(values, mask=missing)
        return pa.DictionaryArray.from_arrays(pa.array(values.astype(np.int8), mask=missing), pa.array(["N", "Y"]))

    if native:
        agent, team, channel, reason = (pc.cast(a, pa.string()) for a in (agent, team, channel, reason))
    client = {canonical: name for name, canonical in CONTACT_COLUMNS.items()}
    cols = {
        client[C.CONTACT_ID]: ids,
        client[C.AGENT_ID]: agent,
        C.TEAM: team,
        client[C.STARTED_AT]: started,
        client[C.CHANNEL]: channel,
        C.CUSTOMER_ID: customer,
        C.REASON: reason,
        C.HANDLE_SECONDS: _ints(c["handle"]),
        C.TALK_SECONDS: _ints(c["talk"]),
        C.HOLD_SECONDS: _ints(c["hold"]),
        C.ACW_SECONDS: _ints(c["acw"]),
        C.QUEUE_SECONDS: _ints(c["queue"]),
        C.ABANDONED: flag(abandoned, not_voice),
        C.FIRST_REPLY_SECONDS: _ints(c["first_reply"]),
        C.RESOLUTION_SECONDS: _ints(c["resolution"]),
        C.RESOLVED_FIRST_CONTACT: flag(c["fcr"], c["fcr_missing"]),
        C.TRANSFERRED: flag(c["transferred"], abandoned),
        C.CALLBACK_PROMISED: flag(c["promised"], not_voice | abandoned),
        C.CALLBACK_COMPLETED: flag(c["kept"], ~c["promised"]),
        C.COMPLAINT: flag(c["complaint"], abandoned),
        C.CSAT: pa.array(c["csat"], mask=~c["csat_resp"], type=pa.int8()),
        C.NPS: pa.array(c["nps"], mask=~c["nps_resp"], type=pa.int8()),
    }
    return pa.table(cols)


def _write_contacts(table: pa.Table, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pq.write_table(table, path, compression="zstd", row_group_size=1_000_000)
        return
    opts = pacsv.WriteOptions(batch_size=65536, quoting_style="none", quoting_header="none")
    with pacsv.CSVWriter(path, table.schema, write_options=opts) as writer:
        # write in slices so peak memory stays near the table itself
        step = 1_000_000
        for lo in range(0, table.num_rows, step):
            writer.write_table(table.slice(lo, step))


# --------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------

def _outcomes(c: dict, seed: int, plan: _Plan, quarter: _Quarter) -> pd.DataFrame:
    """Weekly churn and escalations per team; churn follows the team's realised CSAT when planted."""
    rng = _rng(seed, 30, quarter.number, int(plan.null))
    k = len(TEAMS)
    resp = c["csat_resp"]
    cell = c["team"][resp].astype(np.int64) * WEEKS + c["week"][resp]
    top = np.bincount(cell, weights=(c["csat"][resp] >= 4), minlength=k * WEEKS)
    cnt = np.bincount(cell, minlength=k * WEEKS)
    csat = (top / np.maximum(cnt, 1)).reshape(k, WEEKS)
    noise = rng.normal(0.0, 0.0008, (k, WEEKS))
    if plan.links:
        churn = 0.0035 - 0.015 * (csat - csat.mean()) + noise
    else:
        churn = 0.0035 + noise * 1.5   # same spread as the planted series, no link
    contacts = np.bincount(c["team"].astype(np.int64) * WEEKS + c["week"], minlength=k * WEEKS).reshape(k, WEEKS)
    escalations = rng.poisson(np.maximum(contacts, 1) * 6.0 / 2900.0)
    rows = []
    for w in range(WEEKS):
        for ti, team in enumerate(TEAMS):
            rows.append({O.PERIOD: (quarter.start + timedelta(days=7 * w)).isoformat(), O.TEAM: team,
                         "churn_rate": round(float(max(churn[ti, w], 0.0002)), 5),
                         "escalations": int(escalations[ti, w])})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Staff survey
# --------------------------------------------------------------------------------------------

# respondents per team: (agents, team leads, managers); "" = team not given. Fewer agents answer
# than each team has (TEAM_SIZES: 16, 15, 15, 14), so the response rates are 80-87 %; Delta's
# three respondents are below the anonymity threshold
_SURVEY_GROUPS = (("Atlas", 13, 3, 2), ("Beacon", 13, 3, 2), ("Comet", 12, 3, 2), ("Delta", 2, 1, 0),
                  ("", 4, 0, 1))
_TENURE = ("Under 1 year", "1-3 years", "3-5 years", "Over 5 years")
# staff's mean perception index per metric (1..5), before role effects
_SURVEY_LEVEL = {"AHT": 2.9, "AHT_TEAM": 3.1, "FCR": 3.3, "REPEAT": 3.4, "ASA": 3.2, "SL": 3.3,
                 "ABANDON": 3.3, "FRT": 3.0, "RESOLVE": 3.4, "CALLBACK": 3.3, "COMPLAINTS": 3.5, "CSAT": 3.6}
_ITEM_OFFSET = {"understand": 0.35, "influence": 0.1, "fair": -0.2, "serves_customers": -0.1,
                "pressure": 0.0, "workaround": -0.1, "keep": 0.2}
_COMMENT_METRICS = ("AHT", "FCR", "FRT", "CALLBACK", "CSAT")
_COMMENTS = {
    "AHT": ["We are told to keep calls under six minutes, so long calls get wrapped up early.",
            "Handle time makes sense for planning but not as a personal target.",
            "When a call goes over the target I feel I have to offer a call back instead of fixing it.",
            "The bonus on handle time means people transfer awkward calls.",
            "Handle time is fine, I rarely think about it."],
    "FCR": ["Everything gets coded as resolved now, even when we know the customer will ring back.",
            "The resolved code is ticked by default on the screen.",
            "First contact resolution is a good idea but nobody checks the code.",
            "I try to code it honestly but the team league table rewards ticking the box."],
    "FRT": ["The first reply is often a template just to stop the clock.",
            "Fast replies are good but customers still wait days for the actual answer.",
            "The e-mail queue is hard to keep on top of on Mondays."],
    "CALLBACK": ["We promise call backs we don't have time to make.",
                 "Call backs are not scheduled, so they get forgotten at busy times.",
                 "The call back list is cleared at the end of the day whether they were made or not."],
    "CSAT": ["Some people only send the survey to customers they think are happy.",
             "Customer satisfaction is the measure I care about most.",
             "The survey questions are about the company, not about my call."],
}
_NEUTRAL_COMMENTS = ["No strong view on this one.", "It is explained at induction and that helps.",
                     "The weekly report on this is useful.", "Targets change too often.",
                     "It would help to see this for the whole team, not just for me."]
_NAMES = ("Priya", "Tom", "Aisha", "Gareth", "Joanna", "Kwame", "Lucy", "Marek", "Sian", "Dev")
_SURNAMES = ("Shah", "Evans", "Khan", "Morgan", "Nowak", "Mensah", "Hughes", "Price")


def _survey(seed: int, plan: _Plan, quarter: _Quarter) -> pd.DataFrame:
    """Wide staff survey: answers as labels, comments with the odd e-mail, phone number or name."""
    rng = _rng(seed, 40, quarter.number, int(plan.null))
    teams, roles = [], []
    for team, n_agent, n_lead, n_manager in _SURVEY_GROUPS:
        for role, k in (("agent", n_agent), ("team_lead", n_lead), ("manager", n_manager)):
            teams += [team] * k
            roles += [role] * k
    n = len(roles)
    perm = rng.permutation(n)          # export order is submission order, not grouped
    teams = [teams[i] for i in perm]
    roles = [roles[i] for i in perm]
    is_mgr = np.array([r in S.MANAGER_ROLES for r in roles])
    tenure_p = np.where(is_mgr[:, None], [[0.0, 0.15, 0.35, 0.5]], [[0.25, 0.4, 0.2, 0.15]])
    tenure = [_TENURE[rng.choice(4, p=p)] if rng.random() > 0.04 else "" for p in tenure_p]
    general = rng.normal(0.0, 0.35, n)
    out = {S.RESPONDENT_ID: [f"R{i + 1:03d}" for i in range(n)], S.ROLE: roles, S.TEAM: teams,
           S.TENURE_BAND: tenure}
    for mid in METRIC_IDS:
        level = _SURVEY_LEVEL[mid] + general + rng.normal(0.0, 0.55, n)
        if plan.manager_gap and mid == "AHT":
            level = level + np.where(is_mgr, 1.5, 0.0)
        skipped = rng.random(n) < 0.04
        for item in ITEM_BANK:
            x = level + _ITEM_OFFSET[item] + rng.normal(0.0, 0.6, n)
            if item in REVERSE_ITEMS:
                x = 6.0 - x            # stored as answered: agreeing means worse
            score = np.clip(np.rint(x), 1, 5).astype(int)
            missing = skipped | (rng.random(n) < 0.02)
            out[f"{mid}{SURVEY_SEP}{item}"] = ["" if m else _LABEL_TEXT[s - 1] for s, m in zip(score, missing)]
        if mid in _COMMENT_METRICS:
            out[f"{mid}{SURVEY_SEP}{S.COMMENT}"] = [_comment(rng, mid, plan) if rng.random() < 0.28 else ""
                                                   for _ in range(n)]
    return pd.DataFrame(out)


def _comment(rng: np.random.Generator, mid: str, plan: _Plan) -> str:
    bank = _NEUTRAL_COMMENTS if plan.null else _COMMENTS[mid] + _NEUTRAL_COMMENTS[:2]
    text = bank[rng.integers(len(bank))]
    extra = rng.random()
    first, last = _NAMES[rng.integers(len(_NAMES))], _SURNAMES[rng.integers(len(_SURNAMES))]
    if extra < 0.07:
        text += f" Happy to talk it through: {first.lower()}.{last.lower()}@harbourutilities.example"
    elif extra < 0.12:
        text += f" Call me on 07700 900{rng.integers(100, 1000)} if you want examples."
    elif extra < 0.18:
        text += f" {first} {last} in my team sees this every day."
    elif extra < 0.22:
        text += f" Ask AG{rng.integers(1, N_AGENTS + 1):03d} about it."
    return text


# --------------------------------------------------------------------------------------------
# Params file and expected findings
# --------------------------------------------------------------------------------------------

def params_text(prefix: str = "", *, quarter: int = 1, null: bool = False, seed: int = 20260701,
                contacts: int = 150_000, fmt: str = "csv", output_dir: str = "reports") -> str:
    """The params YAML for a demo folder; input paths are ``prefix + file name``.

    ``params/demo.yaml`` is ``params_text("../demo_client/", output_dir="../reports")``.
    The first line records how the inputs were generated, so :func:`ensure_demo_inputs`
    can regenerate them identically.
    """
    q = QUARTERS[quarter]
    contacts_file = "contacts.parquet" if fmt == "parquet" else FILES["contacts"]
    if fmt == "parquet":
        contacts_input = {"path": prefix + contacts_file, "columns": dict(CONTACT_COLUMNS),
                          "format": {"duration": "seconds"}}
    else:
        contacts_input = {"path": prefix + contacts_file, "columns": dict(CONTACT_COLUMNS),
                          "format": {"delimiter": ",", "encoding": "utf-8", "header_row": 1,
                                     "duration": "seconds", "timestamp": _TIMESTAMP_FORMAT,
                                     "true_values": ["Y"], "false_values": ["N"]}}
    doc = {
        "client": CLIENT,
        "period": q.period,
        "period_start": q.start,
        "period_end": q.end,
        "output_dir": output_dir,
        "previous": None,
        "inputs": {
            "register": {"path": prefix + FILES["register"]},
            "contacts": contacts_input,
            "survey": {"path": prefix + FILES["survey"]},
            "outcomes": {"path": prefix + FILES["outcomes"]},
        },
        "thresholds": {"anonymity": 5, "comments_anonymity": 10, "repeat_window_days": 7,
                       "short_contact_seconds": 10, "service_level_seconds": 20},
        "privacy": {"pseudonymise_agents": True},
        "perception": {"labels": dict(SURVEY_LABELS)},
    }
    header = (header_line(quarter=quarter, null=null, seed=seed, contacts=contacts, fmt=fmt) + "\n"
              f"# {CLIENT} demo client ({'nothing planted' if null else 'planted behaviours'}), "
              f"{q.period}. Paths are relative to this file.\n")
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _entry(lens, metric_id, check, note, scope=None, severity=None, label=None) -> dict:
    out = {"lens": lens, "metric_id": metric_id, "check": check}
    if scope:
        out["scope"] = scope
    if severity:
        out["severity"] = severity
    if label:
        out["label"] = label
    out["note"] = note
    return out


def _expected_list(plan: _Plan) -> list[dict]:
    e = [
        _entry("register", "ABANDON", "purpose_missing", "ABANDON has no purpose in the register."),
        _entry("register", "AHT_TEAM", "duplicate_metric", "AHT_TEAM measures the same KPI (aht) as AHT."),
        _entry("register", "AHT", "surrogation_risk", "Bonus-linked.", severity="high"),
        _entry("register", "FCR", "surrogation_risk", "Bonus-linked.", severity="high"),
        _entry("register", "FRT", "surrogation_risk", "Bonus-linked.", severity="high"),
        _entry("register", "ASA", "surrogation_risk", "Linked to recognition.", severity="medium"),
        _entry("register", "CSAT", "surrogation_risk", "Linked to recognition.", severity="medium"),
    ]
    if not plan.frt_counterbalance:
        e.append(_entry("register", "FRT", "counterbalance_missing",
                        "FRT is bonus-linked and has no counterbalance."))
    if plan.bunching:
        e.append(_entry("behaviour", "AHT", "threshold_bunching",
                        "Beacon's voice handle times heap in 300-359 s, just under the 360 s target.",
                        scope="team:Beacon"))
    if plan.short_calls:
        e += [_entry("behaviour", "AHT", "short_contacts",
                     f"{a} ends about 14 % of answered calls in under 10 s (peers about 0.4 %).",
                     scope=f"agent:{a}") for a in SHORT_CONTACT_AGENTS]
    if plan.displacement:
        e += [_entry("behaviour", "AHT", "displacement",
                     f"{a} (Atlas): handle time about 40 % below peers with about 30 % of contacts transferred.",
                     scope=f"agent:{a}") for a in DISPLACEMENT_AGENTS]
    if plan.comet_fcr:
        e.append(_entry("behaviour", "FCR", "fcr_integrity",
                        "Comet codes about 90 % of contacts resolved while about 35 % are followed by a "
                        "repeat contact within 7 days.", scope="team:Comet"))
    if plan.callbacks:
        e.append(_entry("behaviour", "CALLBACK", "callback_unkept",
                        "Beacon keeps about 55 % of call-back promises; unkept promises are followed by a "
                        "complaint about 4 times as often as kept ones.", scope="overall"))
    if plan.hollow:
        e.append(_entry("behaviour", "FRT", "hollow_first_reply",
                        "About 40 % of e-mails get a first reply within 60 s, and most of those take over "
                        "48 h to resolve.", scope="overall"))
    if plan.selection:
        e.append(_entry("behaviour", "CSAT", "survey_selection",
                        f"{SURVEY_SELECTION_AGENT}: CSAT response rate about 4.5 % (peers about 20 %) with "
                        "about 97 % of answers 4-5.", scope=f"agent:{SURVEY_SELECTION_AGENT}"))
    if plan.delta_friday:
        e.append(_entry("behaviour", "AHT", "end_of_period_surge",
                        "Delta's handle time drops by about 40 % on Fridays.", scope="team:Delta"))
    if plan.manager_gap:
        e.append(_entry("perception", "AHT", "staff_manager_gap",
                        "Team leads and managers rate AHT about 1.5 points higher than agents."))
    if not plan.null:
        lo, hi = plan.fcr_trend
        e += [
            _entry("linkage", "FCR", "decoupling",
                   f"Coded FCR climbs from about {lo:.2f} to {hi:.2f} over the quarter while CSAT and repeat "
                   "contacts do not improve."),
            _entry("linkage", "AHT", "counterbalance_worsened",
                   "Beacon's AHT falls week on week while its repeat contact rate (REPEAT) rises."),
            _entry("linkage", "RESOLVE", "linkage_class",
                   "Slower resolution weeks have lower CSAT (agent-week level).",
                   scope="outcome:csat", label="linked"),
            _entry("linkage", "CSAT", "linkage_class",
                   "Team-weeks with higher CSAT have lower churn.", scope="outcome:churn_rate", label="linked"),
        ]
    return _sorted(e)


def _sorted(entries: list[dict]) -> list[dict]:
    order = {lens: i for i, lens in enumerate(("register", "behaviour", "perception", "linkage"))}
    return sorted(entries, key=lambda r: (order[r["lens"]], r["metric_id"], r["check"], r.get("scope", ""),
                                          r.get("label", "")))


def _consequences(plan: _Plan, expected: list[dict]) -> list[dict]:
    """Flags that follow from the planted behaviours without being planted findings themselves.

    An audit may legitimately raise these; a test of "nothing unexpected" should allow them.
    """
    e = []
    team_agents = {team: [a for a, ti in zip(_AGENT_IDS, _AGENT_TEAM) if TEAMS[ti] == team] for team in TEAMS}
    if plan.bunching:
        e.append(_entry("behaviour", "AHT", "threshold_bunching",
                        "Beacon's bunching shows in the centre-wide distribution too.", scope="overall"))
        e += [_entry("behaviour", "AHT", "threshold_bunching", f"{a} is a Beacon agent; Beacon agents all bunch.",
                     scope=f"agent:{a}") for a in team_agents["Beacon"]]
    if plan.comet_fcr:
        e += [_entry("behaviour", "FCR", "fcr_integrity", f"{a} is a Comet agent; Comet agents all over-code FCR.",
                     scope=f"agent:{a}") for a in team_agents["Comet"]]
    if plan.callbacks:
        e.append(_entry("behaviour", "CALLBACK", "callback_unkept", "Beacon is where the promises are broken.",
                        scope="team:Beacon"))
    if plan.beacon_trend:
        e += [
            _entry("linkage", "AHT", "decoupling",
                   "Centre AHT improves over the quarter (Beacon's fall) while CSAT does not."),
            _entry("linkage", "AHT", "linkage_class", "Follows from the decoupling of AHT from CSAT.",
                   label="decoupled"),
            _entry("linkage", "FCR", "counterbalance_worsened",
                   "FCR rises in Beacon while its counterbalance REPEAT worsens there.", scope="team:Beacon"),
        ]
    if plan.fcr_trend[0] != plan.fcr_trend[1]:
        e.append(_entry("linkage", "FCR", "linkage_class", "Follows from the decoupling of coded FCR.",
                        label="decoupled"))
    # AHT_TEAM measures the same KPI as AHT, so every data finding of AHT may repeat for it
    e += [{**x, "metric_id": "AHT_TEAM", "note": "As for AHT (AHT_TEAM is the same KPI). " + x["note"]}
          for x in expected + e if x["metric_id"] == "AHT" and x["lens"] in ("behaviour", "linkage")]
    return _sorted(e)


def _key(entry: dict) -> tuple:
    return (entry["lens"], entry["metric_id"], entry["check"], entry.get("scope", ""), entry.get("label", ""))


def expected_findings(*, null: bool = False, quarter: int = 1, seed: int = 20260701,
                      contacts: int = 150_000) -> dict:
    """The ``expected_findings.json`` document for a demo configuration."""
    _check_quarter(quarter)
    plan = _plan(null, quarter)
    found = _expected_list(plan)
    doc = {"client": CLIENT, "period": QUARTERS[quarter].period, "quarter": quarter, "null": bool(null),
           "seed": int(seed), "contacts": int(contacts), "findings": found,
           "consequences": _consequences(plan, found)}
    if quarter == 2:
        before = {_key(e): e for e in _expected_list(_plan(null, 1))}
        now = {_key(e): e for e in found}
        doc["fixed"] = [before[k] for k in before if k not in now]
        doc["new"] = [now[k] for k in now if k not in before]
    return doc


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------

def _check_quarter(quarter) -> None:
    if quarter not in QUARTERS:
        raise ParamsError(f"demo quarter {quarter!r} is not available; use 1 (2026-Q3) or 2 (2026-Q4).")


def generate(out_dir, *, null: bool = False, contacts: int = 150_000, seed: int = 20260701,
             quarter: int = 1, fmt: str = "csv") -> Path:
    """Write the demo client into ``out_dir`` and return the path of its params file.

    Parameters
    ----------
    out_dir : folder to write (created if needed); existing demo files are replaced.
    null : the same centre with nothing planted in contacts, survey and outcomes.
    contacts : number of contacts (the file holds exactly this many rows).
    seed : random seed; the same arguments give byte-identical files.
    quarter : 1 = 2026-Q3; 2 = 2026-Q4 (bunching and hollow replies fixed, FRT paired with
        RESOLVE, a new end-of-week surge in Delta).
    fmt : ``"csv"`` or ``"parquet"`` for the contacts file.

    Returns
    -------
    Path of ``params.yaml`` in ``out_dir`` (paths inside it are relative to it).
    """
    _check_quarter(quarter)
    if fmt not in ("csv", "parquet"):
        raise ParamsError(f"demo format {fmt!r} is not supported; use 'csv' or 'parquet'.")
    if isinstance(contacts, bool) or not isinstance(contacts, (int, np.integer)) or contacts < 1000:
        raise ParamsError(f"demo contacts={contacts!r}: give a whole number of at least 1000 "
                          "(the default is 150000).")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    q = QUARTERS[quarter]
    plan = _plan(bool(null), quarter)
    agents = _agents(seed, q)

    # write into a scratch folder next to the target, then move each file into place, so a reader
    # never sees a half-written file
    tmp = Path(tempfile.mkdtemp(prefix=".demo-", dir=out_dir))
    try:
        register_table(quarter).to_csv(tmp / FILES["register"], index=False, lineterminator="\n")
        arrays = _contacts(int(contacts), seed, plan, q, agents)
        _outcomes(arrays, seed, plan, q).to_csv(tmp / FILES["outcomes"], index=False, lineterminator="\n")
        contacts_file = "contacts.parquet" if fmt == "parquet" else FILES["contacts"]
        table = _contacts_table(arrays, agents, q, native=fmt == "parquet")
        del arrays
        _write_contacts(table, tmp / contacts_file, fmt)
        del table
        _survey(seed, plan, q).to_csv(tmp / FILES["survey"], index=False, lineterminator="\n")
        doc = expected_findings(null=null, quarter=quarter, seed=seed, contacts=int(contacts))
        (tmp / FILES["expected"]).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n",
                                             encoding="utf-8")
        (tmp / FILES["params"]).write_text(
            params_text("", quarter=quarter, null=null, seed=seed, contacts=int(contacts), fmt=fmt),
            encoding="utf-8")
        other = out_dir / ("contacts.csv" if fmt == "parquet" else "contacts.parquet")
        if other.exists():   # a stale contacts file of the other format would confuse a reader
            other.unlink()
        for f in sorted(tmp.iterdir()):
            os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / FILES["params"]


def ensure_demo_inputs(params_path) -> bool:
    """Generate a demo params file's inputs when they are missing; return True when it did.

    Only a demo params file is touched (its first line, written by :func:`params_text`,
    records how its inputs were made). Any other params file, or a demo whose inputs are all
    present, is left alone and False is returned. Several notebooks may call this at once on a
    fresh clone: a lock makes one of them generate while the others wait.
    """
    path = Path(params_path)
    header = read_header(path)
    if header is None:
        return False
    inputs = header.inputs
    folders = {p.resolve().parent for p in inputs.values()}
    if not header.missing() or len(folders) != 1:
        return False
    out_dir = folders.pop()
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".demo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all(p.exists() for p in inputs.values()):
            return False          # another process generated them while we waited
        generate(out_dir, null=header.null, contacts=header.contacts, seed=header.seed,
                 quarter=header.quarter, fmt=header.fmt)
    missing = [str(p) for p in inputs.values() if not p.exists()]
    if missing:
        raise RunError(f"generating the demo inputs for {path} did not produce {', '.join(missing)}; "
                       "check that the params file's input names match `kpi-audit demo`'s files.")
    return True
