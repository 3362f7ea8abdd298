"""An evolved policy-gradient loss: how much each step's log-probability gradient counts."""

import numpy as np


# EVOLVE-BLOCK-START
def step_weights(rewards, log_probs, mask, gamma):
    """Returns the weight of each step in the policy-gradient update, an array shaped like rewards.

    The learner (a linear softmax policy on CartPole-v1) ascends the loss
    sum over steps t and episodes i of weight[t, i] * log pi(a[t, i] | s[t, i]), averaged over
    the episodes of a batch, with a fixed learning rate.
    rewards[t, i]: reward at step t of episode i (1 per step alive, 0 after the episode ended).
    log_probs[t, i]: log-probability of the action taken. mask[t, i]: 1.0 while episode i runs.
    gamma: the discount factor (0.99).
    This is plain REINFORCE: the discounted reward-to-go, with no baseline and no scaling.
    """
    returns = np.zeros_like(rewards)
    running = np.zeros(rewards.shape[1])
    for t in reversed(range(rewards.shape[0])):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns
# EVOLVE-BLOCK-END
