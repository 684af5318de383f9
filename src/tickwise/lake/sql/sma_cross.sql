-- The sma_cross rule in SQL, over the lake's bars: SMA({fast}) crossing SMA({slow}),
-- confirmed by volume, as BUY / SELL / HOLD per bar. It gives the same rows as the live
-- and batch rule in tickwise.signals.sma_cross (whose docstring defines it):
--
--   fast, slow   mean close of the {fast} / {slow} bars ending at this bar (NULL in warm-up)
--   state        +1 when fast - slow > 1e-9 * |slow|, -1 when below -1e-9 * |slow|, else 0
--   confirmed    volume * {volume_window} > {volume_factor_text} * (sum of the volumes of the
--                {volume_window} bars BEFORE this one), i.e. volume > {volume_factor_text} x their mean
--   BUY          state goes from <= 0 (previous bar) to +1, confirmed
--   SELL         state goes from >= 0 to -1, confirmed
--   HOLD         everything else; the first {warmup} bars of a series are warm-up
--
-- Run it with `tickwise lake signals` (which fills the parameters), or paste it into
-- `tickwise lake query "..."`.
WITH bars_in AS (
    SELECT symbol, timeframe, ts, close, volume
    FROM bars
    WHERE {where}
),
windowed AS (
    SELECT
        symbol, timeframe, ts, close, volume,
        row_number() OVER w - 1 AS idx,
        CASE WHEN row_number() OVER w >= {fast}
             THEN sum(close) OVER (w ROWS BETWEEN {fast} - 1 PRECEDING AND CURRENT ROW) / {fast} END AS fast,
        CASE WHEN row_number() OVER w >= {slow}
             THEN sum(close) OVER (w ROWS BETWEEN {slow} - 1 PRECEDING AND CURRENT ROW) / {slow} END AS slow,
        CASE WHEN row_number() OVER w > {volume_window}
             THEN sum(volume) OVER (w ROWS BETWEEN {volume_window} PRECEDING AND 1 PRECEDING) END AS volume_sum
    FROM bars_in
    WINDOW w AS (PARTITION BY symbol, timeframe ORDER BY ts)
),
stated AS (
    SELECT
        *,
        CASE WHEN fast - slow > 1e-9 * abs(slow) THEN 1
             WHEN fast - slow < -1e-9 * abs(slow) THEN -1
             ELSE 0 END AS state,
        volume_sum / {volume_window} AS volume_mean
    FROM windowed
),
judged AS (
    SELECT
        *,
        coalesce(lag(state) OVER (PARTITION BY symbol, timeframe ORDER BY ts), 0) AS prev_state,
        coalesce(volume * {volume_window} > {volume_factor} * volume_sum, FALSE) AS confirmed,
        CASE WHEN volume_mean > 0 THEN volume / volume_mean END AS volume_ratio
    FROM stated
),
crossed AS (
    SELECT
        *,
        CASE WHEN prev_state <= 0 AND state = 1 THEN 'above'
             WHEN prev_state >= 0 AND state = -1 THEN 'below' END AS direction,
        'SMA{fast} ' || format('{:.6g}', fast) AS fast_text,
        'SMA{slow} ' || format('{:.6g}', slow) AS slow_text,
        CASE WHEN volume_ratio IS NOT NULL
             THEN 'volume ' || format('{:.1f}', volume_ratio) || 'x its {volume_window}-bar mean'
             ELSE 'volume ' || format('{:.6g}', volume) || ' against a zero {volume_window}-bar mean'
        END AS volume_text
    FROM judged
)
SELECT
    symbol,
    timeframe,
    ts,
    'sma_cross' AS rule,
    CASE WHEN idx >= {warmup} AND direction = 'above' AND confirmed THEN 'BUY'
         WHEN idx >= {warmup} AND direction = 'below' AND confirmed THEN 'SELL'
         ELSE 'HOLD' END AS signal,
    CASE WHEN idx < {warmup} THEN 'warming up: ' || (idx + 1) || ' of {warmup_bars} bars'
         WHEN direction IS NULL THEN 'no cross: ' || fast_text || ' '
              || CASE state WHEN 1 THEN 'above' WHEN -1 THEN 'below' ELSE 'touching' END
              || ' ' || slow_text
         WHEN confirmed THEN fast_text || ' crossed ' || direction || ' ' || slow_text || '; ' || volume_text
         ELSE fast_text || ' crossed ' || direction || ' ' || slow_text || ' but ' || volume_text
              || ' is not above {volume_factor_text}x'
    END AS reason,
    close AS price,
    fast,
    slow,
    CASE WHEN idx >= {volume_window} THEN volume_ratio END AS volume_ratio
FROM crossed
ORDER BY symbol, timeframe, ts
