from __future__ import annotations

from sagemaker_cv.inputs.lst import check_relative_path, parse_lst


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
