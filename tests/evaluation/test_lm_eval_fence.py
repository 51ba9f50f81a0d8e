"""The lm-eval fence (`hubevo.evaluation.lm_eval_fence`): the canary for every private name of lm-eval hubevo
changes or reuses, the patches applied only inside `patched()` and undone after it, overlapping blocks included."""

import inspect
import threading

import lm_eval.api.task
import lm_eval.evaluator
import lm_eval.loggers.utils
import lm_eval.utils
from lm_eval.models.huggingface import HFLM

from hubevo.evaluation import lm_eval_fence


def test_canary_every_name_the_fence_replaces_is_still_what_lm_eval_calls():
    """A rename or a new signature upstream fails here, not as a silent slowdown or a changed score."""
    evaluate_source = inspect.getsource(lm_eval.evaluator.evaluate)
    assert "get_git_commit_hash()" in inspect.getsource(lm_eval.evaluator.simple_evaluate)
    assert "add_env_info(results)" in inspect.getsource(lm_eval.evaluator.simple_evaluate)
    assert lm_eval.evaluator.add_env_info is lm_eval.loggers.utils.add_env_info  # looked up in lm_eval.evaluator
    assert list(inspect.signature(lm_eval.evaluator.add_env_info).parameters) == ["storage"]
    assert list(inspect.signature(lm_eval.evaluator.get_git_commit_hash).parameters) == []
    assert "build_all_requests" in evaluate_source
    assert "tqdm(" in inspect.getsource(lm_eval.api.task.Task.build_all_requests)
    assert lm_eval.api.task.tqdm.__module__.startswith("tqdm")
    assert list(inspect.signature(lm_eval.utils.apply_template).parameters) == ["template", "doc"]
    assert "utils.apply_template(" in inspect.getsource(lm_eval.api.task)
    assert lm_eval.utils.env.from_string("{{ x | upper }}").render(x="a") == "A"  # the Jinja environment it compiles with
    assert list(inspect.signature(lm_eval.api.task.Task.doc_iterator).parameters) == [
        "self", "rank", "limit", "world_size", "samples"]
    replaced = {(module.__name__, name) for module, name, _ in lm_eval_fence.replacements()}
    assert replaced == {("lm_eval.evaluator", "add_env_info"), ("lm_eval.evaluator", "get_git_commit_hash"),
                        ("lm_eval.api.task", "tqdm"), ("lm_eval.utils", "apply_template"),
                        ("Task", "doc_iterator")}


def test_sampled_documents_are_read_alone_in_lm_evals_order_and_numbering(tmp_path):
    from lm_eval.tasks import TaskManager, get_task_dict

    from hubevo.demo.zoo import render_tasks

    task = get_task_dict(["demo_digits"], TaskManager(include_path=str(render_tasks(tmp_path))))["demo_digits"]
    samples = [41, 3, 17, 3, 0]
    expected = list(task.doc_iterator(samples=samples))
    with lm_eval_fence.patched():
        assert list(task.doc_iterator(samples=samples)) == expected
        assert list(task.doc_iterator(limit=4)) == list(enumerate(task.eval_docs))[:4]
    assert [doc["prompt"] for _, doc in expected] == [task.eval_docs[i]["prompt"] for i in (0, 3, 17, 41)]


def test_canary_the_hflm_members_the_resident_model_reuses_are_still_there():
    """`QuietHFLM` holds the model weakly through `_model` and `pretrained`, and keeps `_detect_batch_size`'s
    answers: each is read or assigned by lm-eval's HFLM as below."""
    init = inspect.getsource(HFLM.__init__)
    assert "self._model = " in init and "self.pretrained = " in init
    assert list(inspect.signature(HFLM._detect_batch_size).parameters) == ["self", "requests", "pos"]
    assert "_detect_batch_size(" in inspect.getsource(HFLM)
    for method in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
        assert "disable_tqdm" in inspect.signature(getattr(HFLM, method)).parameters
    assert issubclass(lm_eval_fence.lm_class(), HFLM)


def test_the_patches_hold_inside_the_block_and_are_undone_after_it():
    originals = {(module, name): getattr(module, name) for module, name, _ in lm_eval_fence.replacements()}
    with lm_eval_fence.patched():
        for (module, name), stand_in in zip(originals, (s for *_, s in lm_eval_fence.replacements()), strict=True):
            assert getattr(module, name) is stand_in and stand_in is not originals[module, name]
        assert lm_eval.evaluator.get_git_commit_hash() is None
        assert lm_eval.utils.apply_template("{{q}}!", {"q": "hi"}) == "hi!"
    assert all(getattr(module, name) is original for (module, name), original in originals.items())


def test_overlapping_blocks_patch_once_and_restore_when_the_last_one_ends():
    originals = {(module, name): getattr(module, name) for module, name, _ in lm_eval_fence.replacements()}
    entered, release, seen = threading.Event(), threading.Event(), []

    def other_thread():
        with lm_eval_fence.patched():
            entered.set()
            release.wait(10)
            seen.append(lm_eval.utils.apply_template is originals[lm_eval.utils, "apply_template"])

    worker = threading.Thread(target=other_thread)
    worker.start()
    assert entered.wait(10)
    with lm_eval_fence.patched():
        pass  # this block ends first: the other one is still inside, so nothing is restored yet
    release.set()
    worker.join(10)
    assert seen == [False]
    assert all(getattr(module, name) is original for (module, name), original in originals.items())


def test_an_exception_inside_the_block_still_restores_lm_eval():
    original = lm_eval.evaluator.add_env_info
    try:
        with lm_eval_fence.patched():
            raise RuntimeError("a candidate failed mid-evaluation")
    except RuntimeError:
        pass
    assert lm_eval.evaluator.add_env_info is original
