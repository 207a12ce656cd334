"""Length-grouped batches and truncation reporting."""

from rewardlab.data.batching import length_grouped_batches, pad, truncate


def test_length_grouped_batches_cover_everything_once_and_are_deterministic():
    lengths = [(i * 37) % 101 for i in range(250)]
    a = length_grouped_batches(lengths, 8, seed=3, epoch=0, group=4)
    assert sorted(i for b in a for i in b) == list(range(250))
    assert a == length_grouped_batches(lengths, 8, seed=3, epoch=0, group=4)
    assert a != length_grouped_batches(lengths, 8, seed=3, epoch=1, group=4)
    # inside a batch lengths are close: padding waste far below that of random batches of the same size
    def waste(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    random_batches = [list(range(250))[i: i + 8] for i in range(0, 250, 8)]  # lengths[i] is a scrambled sequence
    assert waste(a) < 0.3 * waste(random_batches)


def test_truncate_sides_keep_specials():
    ids = [1, 10, 11, 12, 13, 14, 2]
    assert truncate(ids, 5, "left", True, True) == [1, 12, 13, 14, 2]
    assert truncate(ids, 5, "right", True, True) == [1, 10, 11, 12, 2]
    assert truncate(ids, 4, "left", False, False) == [12, 13, 14, 2]
    assert truncate(ids, 10, "left", True, True) == ids


def test_pad():
    ids, mask = pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
