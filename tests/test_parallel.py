"""parallel.map_files: largest file first whatever the worker count, and tasks made only as they are handed out."""

import itertools

from musicgen import parallel


class CountingTasks:
    """(index, path) tasks made on demand, counting how many were made."""

    def __init__(self, paths):
        self.paths, self.made = paths, 0

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        self.made += 1
        return index, self.paths[index]


def task_index(task):
    return task[0]


def no_start(context):
    pass


def test_the_largest_files_go_first_and_equal_ones_in_their_order(tmp_path):
    paths = []
    for index, size in enumerate([10, 300, 10, 2000, 0]):
        path = tmp_path / f"{index}.mid"
        path.write_bytes(b"x" * size)
        paths.append(str(path))
    for workers in (1, 2):
        results = parallel.map_files(task_index, CountingTasks(paths), workers, "test", no_start, None)
        assert list(results) == [3, 1, 0, 2, 4], workers


def test_workers_are_handed_a_few_batches_ahead_not_the_whole_corpus(tmp_path):
    tasks = CountingTasks([str(tmp_path / f"missing {index}.mid") for index in range(5000)])
    results = parallel.map_files(task_index, tasks, 2, "test", no_start, None)
    first = list(itertools.islice(results, 1))
    made_for_sizes = len(tasks)
    ahead = parallel.IN_FLIGHT * 2 * parallel.BATCH_FILES
    assert first == [0]
    assert tasks.made - made_for_sizes <= ahead + parallel.BATCH_FILES, "tasks made before the first result"
    assert sorted(results) == list(range(1, 5000)), "and every other one after it"
