"""The span path: business context in application code, enrichment at span start, one
hand-over to the aggregator at span end, sampling that keeps every request countable, and
the middlewares that carry what instrumentations do not (session cookies).

Nothing here knows how spans are aggregated: the processor is handed a ``record``
callable, so the aggregate stage below never needs the span stage and vice versa.
"""
