"""`upwell.__all__` is the public promise: every name in it exists, and nothing public is
left out of it."""

import upwell


def test_all_names_exist() -> None:
    for name in upwell.__all__:
        assert hasattr(upwell, name), name


def test_all_is_sorted_and_unique() -> None:
    assert list(upwell.__all__) == sorted(set(upwell.__all__))


def test_public_classes_carry_a_docstring() -> None:
    for name in upwell.__all__:
        obj = getattr(upwell, name)
        if isinstance(obj, type):
            assert obj.__doc__ and obj.__doc__.strip(), name


def test_seed_api_names_are_there() -> None:
    for cls, methods in {
        upwell.ChunkedUploader: ["upload_file"],
        upwell.ParallelUploader: ["upload_file_streaming", "upload_file_parallel", "upload_file"],
        upwell.ResumableUploader: [
            "upload_file_resumable",
            "create_session",
            "resume_session",
            "get_session_status",
        ],
        upwell.SessionManager: [
            "save_session",
            "load_session",
            "delete_session",
            "list_sessions",
            "cleanup_expired_sessions",
        ],
        upwell.ProgressTracker: ["create_task", "update_progress", "complete_task", "get_task"],
    }.items():
        for method in methods:
            assert callable(getattr(cls, method)), f"{cls.__name__}.{method}"
