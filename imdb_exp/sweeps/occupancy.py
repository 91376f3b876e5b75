"""How busy a parallel sweep kept its workers: the time a worker stood free while jobs were still
waiting to start, from the jobs' runs' start and end times. The time after the last job started is
not idle in this sense (there was nothing left to give), nor is the start-up before the first."""


def idle_share(spans: list[tuple[float, float]], workers: int) -> tuple[float, float]:
    """The workers' summed idle seconds and their share of workers x the sweep's span (the first
    job's start to the last one's end), given each job's (start, end). Jobs are placed in the order
    they started, each on the worker that came free first (the one a dispatcher would have used)."""
    spans = sorted(spans)
    first, last = spans[0][0], max(end for _, end in spans)
    free_at = [first] * workers
    idle = 0.0
    for start, end in spans:
        worker = min(range(workers), key=free_at.__getitem__)
        idle += max(0.0, start - free_at[worker])
        free_at[worker] = end
    return idle, idle / (workers * (last - first))
