"""Flows in production: a flow deployed as an AWS Step Functions state machine.

* :mod:`~batchwright.stepfunctions.compiler` turns a planned flow into an Amazon States
  Language document (one ``batch:submitJob.sync`` task per step);
* :mod:`~batchwright.stepfunctions.layout` says where a deployed run's tasks and their
  inputs are, from the graph alone;
* :mod:`~batchwright.stepfunctions.deployed` is what a deployed task does that the
  scheduler does for ``run`` (recording the run, storing its parameters).
"""
