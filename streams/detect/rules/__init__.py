"""The detection rules, one module each: pure functions of one service minute's figures and
its baseline that return a *margin* -- how far the minute clears the rule, as a multiple of
its threshold (``>= 1`` at the default sensitivity; ``0`` = no evidence). They keep no state
and read no clock: :mod:`streams.detect.monitor` gathers the inputs, the lifecycle
(:mod:`streams.detect.lifecycle`) turns verdicts into alerts.

* :mod:`.spike` -- spend per minute (robust z, ratio, dollar minimum, the service's tail),
  corroborated by calls, tokens or model mix; the absolute rule of the cold start; the
  jump check of the warm-up.
* :mod:`.surge` -- two-minute call surge (runaway loops on small heavy-tailed services).
* :mod:`.shift` -- sustained level shift up, and a sustained drop, of the median of the last
  ``shift_min`` minutes.
* :mod:`.traffic` -- a busy service with no call at all.
* :mod:`.error_rate` -- error-rate rise and outage per provider.
* :mod:`.cause` -- the likely cause named in a spike alert.
"""
