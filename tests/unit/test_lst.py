from __future__ import annotations

from sagemaker_cv.inputs.lst import IndexTracker, check_relative_path, iter_lst, parse_lst


def test_single_and_multi_label_lines():
    entries, problems = parse_lst("5\t1\tdir/dog 1.jpg\n1000\t0\tcat.jpg\n\n", "train.lst", label_count=1)
    assert not problems
    assert [(e.index, e.labels, e.path, e.line) for e in entries] == [
        (5, (1.0,), "dir/dog 1.jpg", 1),
        (1000, (0.0,), "cat.jpg", 2),
    ]
    entries, problems = parse_lst("2676\t1\t0\t0\t0\t0\t000000327617.jpg\n", "m.lst", label_count=5)
    assert not problems and entries[0].labels == (1, 0, 0, 0, 0)


def test_space_separated_lines_from_the_documentation_are_accepted():
    entries, problems = parse_lst(
        "5      1   your_image_directory/train_img_dog1.jpg\n", "d.lst", label_count=1
    )
    assert not problems and entries[0].path == "your_image_directory/train_img_dog1.jpg"


def test_every_problem_names_file_and_line():
    text = "\n".join(
        [
            "1\t0\ta.jpg",
            "x\t0\tb.jpg",
            "2\t0\t1\tc.jpg",
            "1\t0\td.jpg",
            "3\t0\t/etc/passwd",
            "4\t0\t../up.jpg",
            "5\tzero\te.jpg",
            "6\tf.jpg",
        ]
    )
    entries, problems = parse_lst(text, "train_lst/t.lst", label_count=1)
    assert [e.path for e in entries] == ["a.jpg"]
    assert problems == [
        "train_lst/t.lst:2: image index 'x' is not an integer",
        "train_lst/t.lst:3: 2 label column(s), expected 1",
        "train_lst/t.lst:4: image index 1 repeats line 1; indices must be unique",
        "train_lst/t.lst:5: path '/etc/passwd' is absolute; paths must be relative to the channel directory",
        "train_lst/t.lst:6: path '../up.jpg' leaves the channel directory; paths must be relative to the channel directory",
        "train_lst/t.lst:7: labels ['zero'] must be numbers",
        "train_lst/t.lst:8: expected 'index<TAB>label<TAB>path', got 2 column(s)",
    ]


def test_multi_hot_width_message():
    _, problems = parse_lst("1\t1\t0\ta.jpg\n", "m.lst", label_count=3)
    assert problems == ["m.lst:1: 2 label column(s), expected 3 (one 0/1 column per class for multi_label=1)"]


def test_relative_paths():
    assert check_relative_path("a/b.jpg") is None
    assert "absolute" in check_relative_path("/a.jpg")
    assert "leaves" in check_relative_path("a/../../b.jpg")


def test_a_byte_order_mark_is_not_part_of_the_first_index():
    entries, problems = parse_lst("\ufeff0\t1\ta.jpg\n1\t0\tb.jpg\n", "excel.lst", label_count=1)
    assert not problems and [e.index for e in entries] == [0, 1]


def test_numbers_are_ascii_digits_only():
    text = "\n".join(["１\t0\ta.jpg", "٣\t0\tb.jpg", "1_0\t0\tc.jpg", "4\t1_0e-1\td.jpg", "5\t٣\te.jpg"])
    entries, problems = parse_lst(text, "t.lst", label_count=1)
    assert entries == []
    assert problems == [
        "t.lst:1: image index '１' is not an integer",
        "t.lst:2: image index '٣' is not an integer",
        "t.lst:3: image index '1_0' is not an integer",
        "t.lst:4: labels ['1_0e-1'] must be numbers",
        "t.lst:5: labels ['٣'] must be numbers",
    ]
    entries, problems = parse_lst("7.0\t2.000000\ta.jpg\n8\t-1e-3\tb.jpg\n", "t.lst", label_count=1)
    assert not problems and [(e.index, e.labels) for e in entries] == [(7, (2.0,)), (8, (-0.001,))]


def test_huge_and_non_finite_numbers_are_problems_not_crashes():
    _, problems = parse_lst("1e400\t0\ta.jpg\n2\tnan\tb.jpg\n3\tinf\tc.jpg\n", "t.lst", label_count=1)
    assert problems == [
        "t.lst:1: image index '1e400' is not an integer",
        "t.lst:2: labels ['nan'] must be numbers",
        "t.lst:3: labels ['inf'] must be numbers",
    ]
    _, problems = parse_lst("4\t1e400\td.jpg\n", "t.lst", label_count=1)
    assert problems == ["t.lst:1: labels ['1e400'] must be finite numbers"]


def test_a_nul_byte_in_a_path_is_a_problem():
    _, problems = parse_lst("1\t0\ta\x00b.jpg\n", "t.lst", label_count=1)
    assert problems == [
        "t.lst:1: path 'a\\x00b.jpg' contains a control character (such as a NUL byte); paths must be plain text"
    ]


def test_repeated_indices_across_the_files_of_a_channel_name_both_files():
    tracker = IndexTracker()
    for source, text in (
        ("train_lst/a.lst", "0\t0\tx.jpg\n1\t0\ty.jpg\n"),
        ("train_lst/b.lst", "1\t0\tz.jpg\n0\t1\tw.jpg\n2\t0\tv.jpg\n0\t0\tq.jpg\n"),
    ):
        for entry in iter_lst(text.splitlines(), source, label_count=1):
            tracker.add(entry)
    found, total = tracker.problems()
    assert total == 3
    assert [p.text for p in found] == [
        "train_lst/b.lst:1: image index 1 repeats train_lst/a.lst:2; indices must be unique across the "
        "channel's .lst files (is an old copy left beside the new one?)",
        "train_lst/b.lst:2: image index 0 repeats train_lst/a.lst:1; indices must be unique across the "
        "channel's .lst files (is an old copy left beside the new one?)",
        "train_lst/b.lst:4: image index 0 repeats train_lst/a.lst:1; indices must be unique across the "
        "channel's .lst files (is an old copy left beside the new one?)",
    ]
    assert len(tracker.problems(limit=1)[0]) == 1


def test_lines_are_parsed_one_at_a_time():
    def lines():
        yield "1\t0\ta.jpg\n"
        raise AssertionError("read past the first entry")

    first = next(iter_lst(lines(), "t.lst", label_count=1))
    assert first.path == "a.jpg" and first.source == "t.lst"
