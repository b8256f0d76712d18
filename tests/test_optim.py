"""SGD and Adam follow PyTorch's trajectories step for step."""

import numpy as np
import pytest
import torch

from cnnkit import optim
from cnnkit.nn import Parameter

CONFIGS = [
    (optim.SGD, torch.optim.SGD, dict(lr=0.1)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    (optim.Adam, torch.optim.Adam, dict(lr=0.01)),
    (optim.Adam, torch.optim.Adam, dict(lr=0.003, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mine, theirs, kwargs", CONFIGS)
def test_trajectory_matches_torch(mine, theirs, kwargs, dtype, rng):
    """30 steps with the same gradients give the same parameters, a missing grad skipped."""
    start = [rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal(5).astype(dtype)]
    params = [Parameter(a.copy()) for a in start]
    tparams = [torch.tensor(a.copy(), requires_grad=True) for a in start]
    opt, topt = mine(params, **kwargs), theirs(tparams, **kwargs)
    for step in range(30):
        opt.zero_grad()
        topt.zero_grad()
        for p, tp in zip(params, tparams):
            if step % 7 == 3 and p is params[1]:
                continue  # no gradient this step: both optimisers leave it alone
            grad = (rng.standard_normal(p.shape) + p.data).astype(dtype)  # depends on the state
            p.grad = grad
            tp.grad = torch.tensor(grad.copy())
        opt.step()
        topt.step()
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for p, tp in zip(params, tparams):
        assert p.data.dtype == dtype
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda p: optim.SGD(p, lr=-1), ValueError, "lr must be >= 0.0, got -1.0"),
        (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), ValueError, "momentum must be >= 0.0"),
        (lambda p: optim.Adam(p, betas=(0.9, 1.0)), ValueError, "betas must be in [0, 1)"),
        (lambda p: optim.Adam(p, betas=0.9), TypeError, "betas must be a pair"),
        (lambda p: optim.Adam(p, lr="fast"), TypeError, "lr must be a real number"),
        (lambda p: optim.SGD([], lr=0.1), ValueError, "params is empty"),
        (lambda p: optim.SGD(p[0], lr=0.1), TypeError, "got one Parameter"),
        (
            lambda p: optim.SGD([np.zeros(3)], lr=0.1),
            TypeError,
            "params[0] must be a cnnkit.nn.Parameter",
        ),
    ],
)
def test_bad_optimizer_arguments(make, error, message):
    with pytest.raises(error) as info:
        make([Parameter(np.zeros(3))])
    assert message in str(info.value)


@pytest.mark.parametrize("mine, theirs, kwargs", CONFIGS)
def test_blocks_and_threads_give_the_same_trajectory(mine, theirs, kwargs, rng, monkeypatch):
    """Large parameters updated in blocks on 1, 2 or 3 threads: bitwise the same, and PyTorch's."""
    import cnnkit as ck
    from cnnkit import _threads

    monkeypatch.setattr(_threads, "BLOCK_BYTES", 512)
    start = [
        rng.standard_normal((50, 40)).astype(np.float32),
        rng.standard_normal(300).astype(np.float32),
    ]
    grads = [[rng.standard_normal(a.shape).astype(np.float32) for a in start] for _ in range(5)]
    finals = []
    before = ck.get_num_threads()
    try:
        for count in (1, 2, 3):
            ck.set_num_threads(count)
            params = [Parameter(a.copy()) for a in start]
            opt = mine(params, **kwargs)
            for step_grads in grads:
                for p, g in zip(params, step_grads):
                    p.grad = g
                opt.step()
            finals.append([p.data for p in params])
    finally:
        ck.set_num_threads(before)
    for other in finals[1:]:
        for a, b in zip(finals[0], other):
            np.testing.assert_array_equal(a, b)
    tparams = [torch.tensor(a.copy(), requires_grad=True) for a in start]
    topt = theirs(tparams, **kwargs)
    for step_grads in grads:
        for tp, g in zip(tparams, step_grads):
            tp.grad = torch.tensor(g)
        topt.step()
    for a, tp in zip(finals[0], tparams):
        np.testing.assert_allclose(a, tp.detach().numpy(), rtol=1e-5, atol=1e-5)
