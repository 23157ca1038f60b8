"""moto server for the benchmark only: GetMetricData answered from an index of the datapoints.

Stock moto 5.2.5 answers each MetricStat query by scanning every stored datapoint once per period,
so N instances × 3 queries × 15 periods × 42·N datapoints never finishes at N = 5,000. This
wrapper answers the same queries from the datapoints grouped by series and bucketed by period.

It also replaces the query-protocol parser's "is any parameter under this prefix?" check, which
scans every parameter for every nested structure (quadratic in a request's size: a 500-query
GetMetricData or a 1,000-datum PutMetricData takes minutes), with a binary search over the sorted
parameter names: the same answer for every input.

GetMetricData keeps stock moto's semantics exactly, quirks included:
  * a query with dimensions matches datapoints by metric name and dimensions only (stock moto
    ignores the namespace there), a query without dimensions by namespace and name;
  * the optional Unit filter, period buckets [start + k·period, start + (k+1)·period), the
    period start as the timestamp, empty periods left out, datapoints kept in insertion order
    (so sums and averages are computed by moto's own Statistics class over the same list);
  * anything else (metric math, Metrics Insights, more than one dimension, dimensions without
    values, where stock moto's Dimension ordering is not a total order) falls back to stock moto.
tests/tests/bench_wrapper.rs checks the answers against stock moto on the same data.

Usage: python moto_indexed.py [moto_server arguments]
"""

import bisect
import sys
import threading
from collections import defaultdict
from datetime import timedelta

import os

from moto.cloudwatch import models as cw
from moto.core import parse
from moto.server import main

# DynamoDB requests made atomic, as in the tests' server (tests/moto_server.py).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import moto_server  # noqa: E402,F401

_sorted_keys = threading.local()


def fast_gonna_recurse(self, query_params, prefix):
    """Stock: `prefix != "" and not any(key.startswith(prefix) for key in query_params)`."""
    if prefix == "":
        return False
    # One parse reads one unchanging parameter set; the cache holds it, so its identity is never
    # reused while cached. (len() is no cheaper check: werkzeug's CombinedMultiDict rebuilds its
    # keys to count them.)
    cached = getattr(_sorted_keys, "value", None)
    if cached is None or cached[0] is not query_params:
        cached = (query_params, sorted(query_params))
        _sorted_keys.value = cached
    keys = cached[1]
    # The keys starting with `prefix` sort right at or after it, so checking the first such key is enough.
    i = bisect.bisect_left(keys, prefix)
    return not (i < len(keys) and keys[i].startswith(prefix))

_stock_get_metric_data = cw.CloudWatchBackend.get_metric_data


def _simple_dims(dims):
    return len(dims) <= 1 and all(d.name is not None and d.value is not None for d in dims)


def _dims_key(dims):
    return tuple((d.name, d.value) for d in dims)


def indexed_get_metric_data(self, queries, start_time, end_time, scan_by="TimestampAscending"):
    start = start_time.replace(microsecond=0)
    end = end_time.replace(microsecond=0)
    if start >= end or any("MetricStat" not in q for q in queries):
        return _stock_get_metric_data(self, queries, start_time, end_time, scan_by)
    for q in queries:
        if len(q["MetricStat"]["Metric"].get("Dimensions", [])) > 1:
            return _stock_get_metric_data(self, queries, start_time, end_time, scan_by)

    period_data = [md for md in self.get_all_metrics() if start <= md.timestamp < end]
    if not all(_simple_dims(md.dimensions) for md in period_data):
        return _stock_get_metric_data(self, queries, start_time, end_time, scan_by)

    by_name_dims = defaultdict(list)
    by_ns_name = defaultdict(list)
    for md in period_data:
        by_name_dims[(md.name, _dims_key(md.dimensions))].append(md)
        by_ns_name[(md.namespace, md.name)].append(md)

    results = []
    for query in queries:
        metric_stat = query["MetricStat"]
        name = metric_stat["Metric"]["MetricName"]
        ns = metric_stat["Metric"]["Namespace"]
        dims = [cw.Dimension(d["Name"], d["Value"]) for d in metric_stat["Metric"].get("Dimensions", [])]
        delta = timedelta(seconds=int(metric_stat["Period"]))
        unit = metric_stat.get("Unit")
        stat = metric_stat["Stat"]
        if dims:
            if not _simple_dims(dims):
                return _stock_get_metric_data(self, queries, start_time, end_time, scan_by)
            candidates = by_name_dims.get((name, _dims_key(dims)), [])
        else:
            candidates = by_ns_name.get((ns, name), [])
        if unit:
            candidates = [md for md in candidates if md.unit == unit]
        buckets = defaultdict(list)
        for md in candidates:
            buckets[(md.timestamp - start) // delta].append(md)
        values, timestamps = [], []
        for k in sorted(buckets):
            period_start = start + k * delta
            stats = cw.Statistics([stat], period_start)
            stats.metric_data = buckets[k]
            values.append(stats.get_statistics_for_type(stat))
            timestamps.append(stats.timestamp)
        if scan_by == "TimestampDescending" and timestamps:
            timestamps.reverse()
            values.reverse()
        if query.get("ReturnData", True):
            label = query.get("Label") or f"{name} {stat}"
            results.append(
                {"id": query["Id"], "label": label, "values": values, "timestamps": timestamps, "status_code": "Complete"}
            )
    return results


cw.CloudWatchBackend.get_metric_data = indexed_get_metric_data
parse.QueryParser._gonna_recurse = fast_gonna_recurse

if __name__ == "__main__":
    main(sys.argv[1:])
