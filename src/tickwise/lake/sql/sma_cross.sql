-- SMA({fast}) / SMA({slow}) crossover confirmed by volume, over the lake's bars.
--
-- One row per bar with: the two moving averages (NULL during their warm-up), the average
-- volume of the previous {volume_window} bars, and the action:
--   BUY   SMA({fast}) crosses above SMA({slow}) on this bar (it was <= on the bar before)
--         and the bar's volume is above {volume_factor} x that average volume;
--   SELL  the same downwards (SMA({fast}) was >= and is now below);
--   HOLD  anything else: no cross, a cross without volume, or still warming up.
-- It gives the same actions as the live rule (tickwise.signals) on the same bars.
-- Run it with `tickwise lake signals`, or paste it into `tickwise lake query "..."`.
WITH bars_in AS (
    SELECT symbol, timeframe, ts, close, volume
    FROM bars
    WHERE {where}
),
averaged AS (
    SELECT
        symbol, timeframe, ts, close, volume,
        row_number() OVER w AS n,
        avg(close) OVER (w ROWS BETWEEN {fast} - 1 PRECEDING AND CURRENT ROW) AS fast_avg,
        avg(close) OVER (w ROWS BETWEEN {slow} - 1 PRECEDING AND CURRENT ROW) AS slow_avg,
        avg(volume) OVER (w ROWS BETWEEN {volume_window} PRECEDING AND 1 PRECEDING) AS vol_avg
    FROM bars_in
    WINDOW w AS (PARTITION BY symbol, timeframe ORDER BY ts)
),
smoothed AS (
    SELECT
        symbol, timeframe, ts, close, volume,
        CASE WHEN n >= {fast} THEN fast_avg END AS sma_fast,
        CASE WHEN n >= {slow} THEN slow_avg END AS sma_slow,
        CASE WHEN n > {volume_window} THEN vol_avg END AS volume_avg
    FROM averaged
),
crossed AS (
    SELECT
        *,
        lag(sma_fast) OVER w AS prev_fast,
        lag(sma_slow) OVER w AS prev_slow
    FROM smoothed
    WINDOW w AS (PARTITION BY symbol, timeframe ORDER BY ts)
),
judged AS (
    SELECT
        *,
        coalesce(prev_fast <= prev_slow AND sma_fast > sma_slow, FALSE) AS cross_up,
        coalesce(prev_fast >= prev_slow AND sma_fast < sma_slow, FALSE) AS cross_down,
        coalesce(volume > {volume_factor} * volume_avg, FALSE) AS volume_confirmed
    FROM crossed
)
SELECT
    symbol, timeframe, ts, close, volume, sma_fast, sma_slow, volume_avg,
    CASE
        WHEN cross_up AND volume_confirmed THEN 'BUY'
        WHEN cross_down AND volume_confirmed THEN 'SELL'
        ELSE 'HOLD'
    END AS action,
    CASE
        WHEN (cross_up OR cross_down) AND volume_confirmed THEN
            'SMA({fast}) crossed ' || CASE WHEN cross_up THEN 'above' ELSE 'below' END
            || ' SMA({slow}) with volume ' || round(volume / volume_avg, 2) || 'x its {volume_window}-bar average'
        WHEN cross_up OR cross_down THEN
            'SMA({fast}) crossed ' || CASE WHEN cross_up THEN 'above' ELSE 'below' END
            || ' SMA({slow}) without volume confirmation'
        WHEN sma_slow IS NULL OR prev_slow IS NULL THEN 'warming up'
        ELSE 'no crossover'
    END AS reason
FROM judged
ORDER BY symbol, timeframe, ts
