from imdb_exp.sweeps.occupancy import idle_share


def test_a_worker_waiting_for_its_batch_partner_is_idle_and_one_started_as_the_other_ends_is_not():
    # Batches of two: the short job's worker waits 8 s for the long one before the next pair starts.
    batches = [(0, 10), (0, 2), (10, 20), (10, 12)]
    assert idle_share(batches, 2) == (8.0, 8.0 / 40)
    # As workers free up: the second worker runs the short ones back to back while the long one runs.
    as_free = [(0, 10), (0, 2), (2, 4), (4, 14)]
    idle, share = idle_share(as_free, 2)
    assert idle == 0.0 and share == 0.0
    assert idle_share([(0, 4), (5, 9)], 1) == (1.0, 1.0 / 9)  # the gap between two jobs on one worker
