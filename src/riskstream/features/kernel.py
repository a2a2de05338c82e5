"""The compiled per-event loop: features from prior state, then the state update.

One call handles a whole micro-batch. Events must be given in event order (the caller sorts);
each event reads its user's and merchant's record, emits its features (describing the event
*against history before it*), then folds itself into the records. An event whose
``(timestamp, tiebreak)`` is not after the user's last applied one is scored but not applied:
that is what makes a replayed batch count nothing twice.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

import riskstream.features.spec as S

_EARTH_KM = 6371.0088  # mean Earth radius (IUGG)


@njit(cache=True, inline="always")
def _haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    dphi = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2.0 * _EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


@njit(cache=True, inline="always")
def _ring_seen(rec: np.ndarray, start: int, size: int, h: float) -> bool:
    for j in range(size):  # noqa: SIM110 - numba: explicit loop, no generator
        if rec[start + j] == h:
            return True
    return False


@njit(cache=True, inline="always")
def _novel(rec: np.ndarray, start: int, size: int, h: float, hist: bool) -> float:
    """1.0 for a present value not among the user's recent ones (only past the cold start)."""
    return 1.0 if hist and h != 0.0 and not _ring_seen(rec, start, size, h) else 0.0


@njit(cache=True, inline="always")
def _ring_add(rec: np.ndarray, start: int, size: int, pos_slot: int, h: float) -> None:
    if h == 0.0 or _ring_seen(rec, start, size, h):
        return
    pos = int(rec[pos_slot]) % size
    rec[start + pos] = h
    rec[pos_slot] = pos + 1


@njit(cache=True, inline="always")
def _rebase(rec: np.ndarray, ref_slot: int, first: int, taus: np.ndarray, new_ref: float) -> None:
    """Move decayed counters ``rec[first : first + len(taus)]`` to reference time
    ``new_ref`` (only ever forward)."""
    ref = rec[ref_slot]
    if new_ref > ref:
        for k in range(taus.shape[0]):
            rec[first + k] *= math.exp(-(new_ref - ref) / taus[k])
        rec[ref_slot] = new_ref


@njit(cache=True, inline="always")
def _at(rec: np.ndarray, ref_slot: int, slot: int, tau: float, t: float) -> float:
    """A decayed counter read at time ``t``."""
    return rec[slot] * math.exp(-(t - rec[ref_slot]) / tau)


@njit(cache=True, inline="always")
def _apply_label(
    ulab: np.ndarray,
    mlab: np.ndarray,
    s: float,
    fraud: float,
    counted: float,
    taus: np.ndarray,
) -> None:
    """Fold one label change into a user's and a merchant's label records.

    ``s`` is the labelled transaction's time; ``fraud`` is +1 (a new fraud), -1 (a fraud
    withdrawn) or 0; ``counted`` +1 for a transaction labelled for the first time. Counters
    decay by transaction time, so each contribution is ``exp(-(ref - s) / tau)``.
    """
    if ulab.shape[0] > 0 and fraud != 0.0:
        _rebase(ulab, S.L_REF, S.UL_F30, taus[2:3], s)
        ulab[S.UL_F30] += fraud * math.exp(-(ulab[S.L_REF] - s) / taus[2])
        ulab[S.UL_ANY] = max(ulab[S.UL_ANY] + fraud, 0.0)
        if fraud > 0:
            ulab[S.UL_LAST_FRAUD] = max(ulab[S.UL_LAST_FRAUD], s)
        ulab[S.L_VER] += 1.0
    if mlab.shape[0] > 0 and (fraud != 0.0 or counted != 0.0):
        ref = mlab[S.L_REF]
        if s > ref:  # frauds and labelled counts share the reference: move both together
            for k in range(3):
                f = math.exp(-(s - ref) / taus[k])
                mlab[S.ML_F1 + k] *= f
                mlab[S.ML_L1 + k] *= f
            mlab[S.L_REF] = s
        for k in range(3):
            w = math.exp(-(mlab[S.L_REF] - s) / taus[k])
            mlab[S.ML_F1 + k] += fraud * w
            mlab[S.ML_L1 + k] += counted * w
        if fraud > 0:
            mlab[S.ML_LAST_FRAUD] = max(mlab[S.ML_LAST_FRAUD], s)
        mlab[S.L_VER] += 1.0


@njit(cache=True)
def apply_labels(
    user_lab: np.ndarray,
    mer_lab: np.ndarray,
    lab_user: np.ndarray,
    lab_mer: np.ndarray,
    lab_ts: np.ndarray,
    lab_fraud: np.ndarray,
    lab_counted: np.ndarray,
    params: np.ndarray,
    start: int,
    stop: int,
) -> None:
    """Apply label changes ``start .. stop - 1`` (rows ``-1``: no such record)."""
    taus = np.array([params[8], params[9], params[16]])  # 1 d, 7 d, 30 d
    empty = np.zeros(0)
    for j in range(start, stop):
        u = lab_user[j]
        m = lab_mer[j]
        _apply_label(
            user_lab[u] if u >= 0 else empty,
            mer_lab[m] if m >= 0 else empty,
            lab_ts[j],
            lab_fraud[j],
            lab_counted[j],
            taus,
        )


@njit(cache=True)
def run_kernel(
    ts: np.ndarray,
    tiebreak: np.ndarray,
    amount: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    hour: np.ndarray,
    dev_h: np.ndarray,
    mer_h: np.ndarray,
    cat_h: np.ndarray,
    cty_h: np.ndarray,
    user_row: np.ndarray,
    mer_row: np.ndarray,
    users: np.ndarray,
    merchants: np.ndarray,
    params: np.ndarray,
    apply: bool,
    out: np.ndarray,
    applied: np.ndarray,
    seq_out: np.ndarray,
    user_lab: np.ndarray,
    mer_lab: np.ndarray,
    lab_at: np.ndarray,
    lab_user: np.ndarray,
    lab_mer: np.ndarray,
    lab_ts: np.ndarray,
    lab_fraud: np.ndarray,
    lab_counted: np.ndarray,
) -> None:
    alpha, robust_after, clip_z = params[0], params[1], params[2]
    prior_mean, prior_var, prior_w, var_floor = params[3], params[4], params[5], params[6]
    tau1, tau24, tau7 = params[7], params[8], params[9]
    hour_decay, hour_smooth, min_hist = params[10], params[11], params[12]
    min_travel, first_gap, m_alpha = params[13], params[14], params[15]
    tau30, prior_rate, prior_n, never = params[16], params[17], params[18], params[19]
    taus = np.array([tau24, tau7, tau30])
    n_events = ts.shape[0]
    n_labels = lab_at.shape[0]
    next_label = 0
    for i in range(n_events):
        rec = users[user_row[i]]
        t = ts[i]
        # Outcomes known before this event (reported strictly earlier) count for it; the rest
        # wait. Labels come sorted by the time they apply from.
        first = next_label
        while next_label < n_labels and lab_at[next_label] < t:
            next_label += 1
        if next_label > first and apply:
            apply_labels(user_lab, mer_lab, lab_user, lab_mer, lab_ts, lab_fraud, lab_counted,
                         params, first, next_label)
        la = math.log1p(amount[i])
        n = rec[S.U_N]
        # ---- amount against the user's own history (shrunk to the prior at cold start) ----
        w = n / (n + prior_w)
        mean = w * rec[S.U_MEAN] + (1.0 - w) * prior_mean
        var = w * rec[S.U_VAR] + (1.0 - w) * prior_var
        sd = math.sqrt(max(var, var_floor))
        z = (la - mean) / sd
        out[i, 0] = la
        out[i, 1] = z
        out[i, 2] = amount[i] / math.expm1(mean) if mean > 0 else amount[i]
        # ---- timing and decayed velocity ----
        if n > 0:  # noqa: SIM108 - keeps the numba branch readable
            gap = max(t - rec[S.U_LAST_TS], 0.0)
        else:
            gap = first_gap
        out[i, 3] = math.log1p(gap)
        f1 = math.exp(-gap / tau1)
        f24 = math.exp(-gap / tau24)
        f7 = math.exp(-gap / tau7)
        c1 = rec[S.U_C1H] * f1 + 1.0
        s1 = rec[S.U_S1H] * f1 + amount[i]
        c24 = rec[S.U_C24H] * f24 + 1.0
        s24 = rec[S.U_S24H] * f24 + amount[i]
        c7 = rec[S.U_C7D] * f7 + 1.0
        s7 = rec[S.U_S7D] * f7 + amount[i]
        usual = math.expm1(mean) if mean > 0 else 1.0
        out[i, 4] = c1
        out[i, 5] = c24
        out[i, 6] = c7
        out[i, 7] = s1 / usual
        out[i, 8] = s24 / usual
        # ---- travel from the previous located event ----
        has_loc = not (math.isnan(lat[i]) or math.isnan(lon[i]))
        dist = 0.0
        speed = 0.0
        if has_loc and rec[S.U_LOC_TS] > 0:
            dist = _haversine(rec[S.U_LAT], rec[S.U_LON], lat[i], lon[i])
            dt_h = max(t - rec[S.U_LOC_TS], min_travel) / 3600.0
            speed = dist / dt_h
        out[i, 9] = dist
        out[i, 10] = speed
        # ---- novelty (judged only with enough history) ----
        hist = n >= min_hist
        out[i, 11] = _novel(rec, S.U_DEV, S.N_DEV, dev_h[i], hist)
        out[i, 12] = _novel(rec, S.U_MER, S.N_MER, mer_h[i], hist)
        out[i, 13] = _novel(rec, S.U_CAT, S.N_CAT, cat_h[i], hist)
        out[i, 14] = _novel(rec, S.U_CTY, S.N_CTY, cty_h[i], hist)
        # ---- hour of day against the user's usual hours ----
        h = hour[i]
        if hist:
            # 0 at the user's busiest hour, towards 1 at hours they never use (smoothed).
            peak = 0.0
            for j in range(24):
                peak = max(peak, rec[S.U_HOURS + j])
            out[i, 15] = 1.0 - (rec[S.U_HOURS + h] + hour_smooth) / (peak + hour_smooth)
        else:
            out[i, 15] = 0.0
        # ---- merchant aggregates ----
        m = mer_row[i]
        if m >= 0:
            mrec = merchants[m]
            mn = mrec[S.M_N]
            mw = mn / (mn + prior_w)
            mmean = mw * mrec[S.M_MEAN] + (1.0 - mw) * prior_mean
            mvar = mw * mrec[S.M_VAR] + (1.0 - mw) * prior_var
            out[i, 16] = (la - mmean) / math.sqrt(max(mvar, var_floor))
            mgap = max(t - mrec[S.M_LAST_TS], 0.0) if mn > 0 else first_gap
            mc24 = mrec[S.M_C24H] * math.exp(-mgap / tau24) + 1.0
            out[i, 17] = mc24
        else:
            out[i, 16] = 0.0
            out[i, 17] = 0.0
        # ---- label-aware: what reported outcomes say about this merchant and this user ----
        if m >= 0:
            ml = mer_lab[m]
            for k in range(3):
                frauds = max(_at(ml, S.L_REF, S.ML_F1 + k, taus[k], t), 0.0)
                labelled = max(_at(ml, S.L_REF, S.ML_L1 + k, taus[k], t), 0.0)
                out[i, 21 + k] = frauds
                out[i, 26 + k] = (frauds + prior_n * prior_rate) / (labelled + prior_n)
            out[i, 24] = _at(ml, S.ML_TREF, S.ML_T7, tau7, t)
            out[i, 25] = _at(ml, S.ML_TREF, S.ML_T30, tau30, t)
            last = ml[S.ML_LAST_FRAUD]
            out[i, 29] = min(max(t - last, 0.0) / 86400.0, never) if last > 0 else never
        else:
            for k in range(21, 30):
                out[i, k] = 0.0
            for k in range(3):
                out[i, 26 + k] = prior_rate
            out[i, 29] = never
        ul = user_lab[user_row[i]]
        out[i, 30] = 1.0 if ul[S.UL_ANY] > 0 else 0.0
        out[i, 31] = max(_at(ul, S.L_REF, S.UL_F30, tau30, t), 0.0)
        ulast = ul[S.UL_LAST_FRAUD]
        out[i, 32] = min(max(t - ulast, 0.0) / 86400.0, never) if ulast > 0 else never
        out[i, 18] = math.log1p(n)
        out_prior = rec[S.U_OUT] * f7
        out[i, 19] = out_prior
        out[i, 20] = out[i, 2] * (1.0 + math.log1p(out_prior))
        # ---- the user's recent sequence (prior steps, oldest first) and this step ----
        written = int(rec[S.U_SEQ_N])
        steps = min(written, S.SEQ_LEN)
        for slot in range(S.SEQ_LEN):
            back = S.SEQ_LEN - slot  # 8 .. 1 steps ago
            base = slot * S.SEQ_DIM
            if back <= steps:
                src = S.U_SEQ + ((written - back) % S.SEQ_LEN) * S.SEQ_DIM
                for d in range(S.SEQ_DIM):
                    seq_out[i, base + d] = rec[src + d]
            else:
                for d in range(S.SEQ_DIM):
                    seq_out[i, base + d] = 0.0
        angle = 2.0 * math.pi * h / 24.0
        now = S.SEQ_LEN * S.SEQ_DIM
        seq_out[i, now] = la
        seq_out[i, now + 1] = math.log1p(gap / 3600.0)
        seq_out[i, now + 2] = math.sin(angle)
        seq_out[i, now + 3] = math.cos(angle)
        seq_out[i, now + 4] = steps

        # ---- state update, at most once per event ----
        if not apply:
            continue
        newer = (
            (n == 0)
            or (t > rec[S.U_LAST_TS])
            or (t == rec[S.U_LAST_TS] and tiebreak[i] > rec[S.U_LAST_TB])
        )
        if not newer:
            continue
        applied[i] = True
        a = max(1.0 / (n + 1.0), alpha)
        dev = la - rec[S.U_MEAN] if n > 0 else 0.0
        outlier = n >= robust_after and abs(dev) > clip_z * math.sqrt(max(rec[S.U_VAR], var_floor))
        if outlier:
            # An outlier is kept out of "usual" entirely: a compromised card paying 5x for two
            # weeks must not teach us that 5x is normal. Genuine shifts in spending still move
            # the profile through the many in-range events.
            a = 0.0
        # Only payments *above* usual count: a card used for unusually small amounts is not
        # the compromise pattern (card testing has its own velocity features).
        rec[S.U_OUT] = out_prior + (1.0 if outlier and dev > 0 else 0.0)
        if n == 0:
            rec[S.U_MEAN] = la
            rec[S.U_VAR] = 0.0
        else:
            rec[S.U_MEAN] += a * dev
            rec[S.U_VAR] = (1.0 - a) * (rec[S.U_VAR] + a * dev * dev)
        rec[S.U_C1H], rec[S.U_S1H] = c1, s1
        rec[S.U_C24H], rec[S.U_S24H] = c24, s24
        rec[S.U_C7D], rec[S.U_S7D] = c7, s7
        for j in range(24):
            rec[S.U_HOURS + j] *= hour_decay
        rec[S.U_HOURS + h] += 1.0
        if has_loc:
            rec[S.U_LAT], rec[S.U_LON], rec[S.U_LOC_TS] = lat[i], lon[i], t
        _ring_add(rec, S.U_DEV, S.N_DEV, S.U_RING_POS, dev_h[i])
        _ring_add(rec, S.U_MER, S.N_MER, S.U_RING_POS + 1, mer_h[i])
        _ring_add(rec, S.U_CAT, S.N_CAT, S.U_RING_POS + 2, cat_h[i])
        _ring_add(rec, S.U_CTY, S.N_CTY, S.U_RING_POS + 3, cty_h[i])
        dst = S.U_SEQ + (written % S.SEQ_LEN) * S.SEQ_DIM
        for d in range(S.SEQ_DIM):
            rec[dst + d] = seq_out[i, now + d]
        rec[S.U_SEQ_N] = written + 1.0
        rec[S.U_N] = n + 1.0
        rec[S.U_LAST_TS] = t
        rec[S.U_LAST_TB] = tiebreak[i]
        if m >= 0:
            mrec = merchants[m]
            mn = mrec[S.M_N]
            if mn > 0 and t < mrec[S.M_LAST_TS]:
                continue  # merchants see interleaved users; late events do not rewind them
            ma = max(1.0 / (mn + 1.0), m_alpha)
            if mn == 0:
                mrec[S.M_MEAN] = la
                mrec[S.M_VAR] = 0.0
                mgap = 0.0
            else:
                mdev = la - mrec[S.M_MEAN]
                mrec[S.M_MEAN] += ma * mdev
                mrec[S.M_VAR] = (1.0 - ma) * (mrec[S.M_VAR] + ma * mdev * mdev)
                mgap = t - mrec[S.M_LAST_TS]
            mrec[S.M_C24H] = mrec[S.M_C24H] * math.exp(-mgap / tau24) + 1.0
            ml = mer_lab[m]
            _rebase(ml, S.ML_TREF, S.ML_T7, taus[1:], t)
            ml[S.ML_T7] += 1.0
            ml[S.ML_T30] += 1.0
            ml[S.L_VER] += 1.0
            mrec[S.M_N] = mn + 1.0
            mrec[S.M_LAST_TS] = t
            mrec[S.M_LAST_TB] = tiebreak[i]
    # Outcomes reported after the batch's last event: applied now, counted from the next one.
    if next_label < n_labels and apply:
        apply_labels(user_lab, mer_lab, lab_user, lab_mer, lab_ts, lab_fraud, lab_counted,
                     params, next_label, n_labels)
