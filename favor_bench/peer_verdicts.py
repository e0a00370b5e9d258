"""The CPU-speed targets against the peers (``peers.PeerAttentionTime``) and their verdicts.

The rows are ``scripts/peers_figure.py``'s table: per (mode, pass, L) each implementation's median
time ``{name}_s`` with its interval (``_low_s``, ``_high_s``), and each ratio with its interval
(``_low``, ``_high``, from :func:`ratio_columns`).

Intervals and verdicts. asv gives each median a 99% confidence interval (order statistics of the
samples of every round, pooled). A ratio's interval is the ratio of opposite ends, [a_lo / b_hi,
a_hi / b_lo]: it holds the ratio of the two medians whenever both intervals hold theirs, so with
probability at least 98% (Bonferroni; no independence needed). A target at one L is met when the
whole interval is on its side, missed when the whole interval is on the other, and undecided
otherwise; a claim over k lengths is met (or missed) only as its lengths say, so a wrong "met" or
"not met" needs an interval that missed its median: at most 2k% per claim. The floor's rates (the
best of five runs) are taken as exact. The intervals describe the variation within one run: a
median can move further between runs (up to 1.6x at L = 1k, ``PeerAttentionTime.rounds``), so a
verdict is about the run it names. ``scripts/process_timings.py`` decides a target with the same
rule over many fresh processes, each process one sample.
"""

from __future__ import annotations

import math

from . import peers

OURS = tuple(peers.FAVOR_IMPLS)
PEERS = ("performer-pytorch", "sdpa")
TARGETS = {
    ("performer-pytorch", "bidirectional"): 2.0,
    ("performer-pytorch", "causal"): 10.0,
}
FLOOR_TARGET, FLOOR_FROM = 2.0, 16384
CAUSAL_OVER_BIDIRECTIONAL = 1.5


def ratio_columns(name: str, numerator: tuple, denominator: tuple) -> dict:
    """``{name, name_low, name_high}``: the ratio of two (median, low, high) triples and its interval
    [low / high', high / low'] (None where either is missing). asv extends an interval it cannot
    bound by order statistics (fewer than 8 samples) with a posterior that can reach below zero; a
    time's interval is cut at zero, so such an end of the ratio is 0 or inf (unbounded)."""
    (a, a_low, a_high), (b, b_low, b_high) = numerator, denominator
    if not (a and b):
        return {name: None, f"{name}_low": None, f"{name}_high": None}
    low = a_low / b_high if a_low > 0 else 0.0
    high = a_high / b_low if b_low > 0 else math.inf
    return {name: a / b, f"{name}_low": low, f"{name}_high": high}


def side_of(low: float, high: float, target: float, at_least: bool) -> str:
    """Where an interval [low, high] lies against a target ``ratio >= target`` (``at_least``) or
    ``ratio <= target``: "met" (wholly on its side), "missed" (wholly on the other) or "undecided"."""
    if at_least:
        return "met" if low >= target else "missed" if high < target else "undecided"
    return "met" if high <= target else "missed" if low > target else "undecided"


def _interval(value: float, low: float, high: float) -> str:
    return f"{value:.2f} (99% interval {low:.2f}-{high:.2f})"


def _crossover_row(rows: list[dict], mode: str, attention_pass: str, ours: str) -> dict | None:
    """The row of the smallest measured L from which ``ours`` beats SDPA at every larger measured L."""
    points = [r for r in rows if (r["mode"], r["pass"]) == (mode, attention_pass) and r[f"{ours}_s"]]
    faster_from = None
    for row in sorted(points, key=lambda r: r["L"], reverse=True):
        ratio = row[f"sdpa_over_{ours}"]
        if ratio is not None and ratio > 1:
            faster_from = row
        elif ratio is not None:
            break
    return faster_from


NO_CROSSOVER = "never (in the measured range)"


def crossover(rows: list[dict], mode: str, attention_pass: str, ours: str = "favor-bench") -> str:
    """``"L = …"``: the smallest measured L from which ``ours`` beats SDPA at every larger one."""
    row = _crossover_row(rows, mode, attention_pass, ours)
    return NO_CROSSOVER if row is None else f"L = {row['L']}"


def _crossover_text(rows: list[dict], mode: str, attention_pass: str, ours: str) -> str:
    """:func:`crossover` with SDPA's time over ours at that L and its 99% interval."""
    row = _crossover_row(rows, mode, attention_pass, ours)
    if row is None:
        return NO_CROSSOVER
    column = f"sdpa_over_{ours}"
    ratio = _interval(row[column], row[f"{column}_low"], row[f"{column}_high"])
    return f"L = {row['L']}; sdpa/{ours} there {ratio}"


def peer_claim(rows: list[dict], peer: str, mode: str, target: float, ours: str = "favor-bench") -> dict:
    """``{ours}: {mode} forward >= target x peer`` at every measured L, with its verdict.

    Each length is met, missed or undecided by its ratio's interval (:func:`side_of`). No
    implementation of the forward runs below the floor, so none is faster than the peer by more than
    time(peer) / floor: a length where that bound is below the target cannot be met. Verdict: "not
    met" where some length with room is missed; else "not attainable" where some length without room
    is not met; else "undecided" where some length is; else "met". The measured text gives the least
    ratio with its interval and names the lengths that decide a verdict other than "met".
    """
    column = f"{peer}_over_{ours}"
    points = [r for r in rows if (r["mode"], r["pass"]) == (mode, "forward") and r[column] is not None]
    claim = f"{ours}: {mode} forward >= {target:g}x {peer} at every measured L >= 1024"
    if not points:
        return {"claim": claim, "measured": "n/a", "verdict": "n/a"}
    worst = min(points, key=lambda r: r[column])
    measured = (
        f"least ratio {_interval(worst[column], worst[f'{column}_low'], worst[f'{column}_high'])} "
        f"at L = {worst['L']}, over {len(points)} lengths"
    )
    sides = {r["L"]: side_of(r[f"{column}_low"], r[f"{column}_high"], target, at_least=True) for r in points}
    room = {r["L"]: r[f"{peer}_over_floor"] is None or r[f"{peer}_over_floor"] >= target for r in points}
    missed = [length for length, side in sides.items() if side == "missed" and room[length]]
    bounded = [r for r in points if sides[r["L"]] != "met" and not room[r["L"]]]
    undecided = [length for length, side in sides.items() if side == "undecided"]
    if missed:
        verdict = "not met"
        measured += "; missed at " + _lengths(missed)
    elif bounded:
        verdict = "not attainable"
        bounds = ", ".join(f"{r[f'{peer}_over_floor']:.2f} at L = {r['L']}" for r in bounded)
        measured += f"; not met only where {peer} itself runs within {target:g}x of the floor ({bounds})"
    elif undecided:
        verdict = "undecided"
        measured += f"; the interval holds {target:g} at " + _lengths(undecided)
    else:
        verdict = "met"
    return {"claim": claim, "measured": measured, "verdict": verdict}


def _lengths(lengths: list[int]) -> str:
    return "L = " + ", ".join(str(length) for length in lengths)


def bounded_claim(claim: str, points: list[tuple], describe: str, target: float) -> dict:
    """``claim``: every (L, value, low, high) in ``points`` at most ``target``; "not met" where some
    interval lies wholly above it, "undecided" where some holds it (:func:`side_of`), n/a without
    points."""
    if not points:
        return {"claim": claim, "measured": "n/a", "verdict": "n/a"}
    length, value, low, high = max(points, key=lambda point: point[1])
    sides = {point[0]: side_of(point[2], point[3], target, at_least=False) for point in points}
    measured = f"{describe} {_interval(value, low, high)} at L = {length}"
    missed = [length for length, side in sides.items() if side == "missed"]
    undecided = [length for length, side in sides.items() if side == "undecided"]
    if missed:
        return {"claim": claim, "measured": f"{measured}; missed at {_lengths(missed)}", "verdict": "not met"}
    if undecided:
        measured += f"; the interval holds {target:g} at {_lengths(undecided)}"
        return {"claim": claim, "measured": measured, "verdict": "undecided"}
    return {"claim": claim, "measured": measured, "verdict": "met"}


def claims(rows: list[dict]) -> list[dict]:
    """Each CPU-speed target for each of favor-bench's implementations, with the number that decides it."""
    out = []
    for ours in OURS:
        out += [peer_claim(rows, peer, mode, target, ours) for (peer, mode), target in TARGETS.items()]
        column = f"{ours}_over_floor"
        floor = [
            (r["L"], r[column], r[f"{column}_low"], r[f"{column}_high"])
            for r in rows
            if (r["mode"], r["pass"]) == ("bidirectional", "forward")
            and r["L"] >= FLOOR_FROM
            and r[column] is not None
        ]
        claim = f"{ours}: bidirectional forward within {FLOOR_TARGET:g}x of the floor at L >= {FLOOR_FROM}"
        out.append(bounded_claim(claim, floor, "largest time/floor", FLOOR_TARGET))
        forward = {
            (r["mode"], r["L"]): (r[f"{ours}_s"], r[f"{ours}_low_s"], r[f"{ours}_high_s"])
            for r in rows
            if r["pass"] == "forward"
        }
        missing = (None, None, None)
        causal_ratios = []
        for length in peers.LENGTHS:
            pair = (forward.get((mode, length), missing) for mode in ("causal", "bidirectional"))
            ratio = ratio_columns("r", *pair)
            if ratio["r"] is not None:
                causal_ratios.append((length, ratio["r"], ratio["r_low"], ratio["r_high"]))
        claim = f"{ours}: causal forward <= {CAUSAL_OVER_BIDIRECTIONAL:g}x bidirectional at every measured L"
        out.append(
            bounded_claim(claim, causal_ratios, "largest causal/bidirectional", CAUSAL_OVER_BIDIRECTIONAL)
        )
        for mode in peers.MODES:
            for attention_pass in peers.PASSES:
                out.append(
                    {
                        "claim": f"{ours}: crossover with SDPA, {mode} {attention_pass}: faster from",
                        "measured": _crossover_text(rows, mode, attention_pass, ours),
                        "verdict": "reported",
                    }
                )
    return out
