"""AWS Batch, the pure part: the ``@batch`` option table, the platform rules, the job spec
(contract 2: job definition, submission, job environment), the failure vocabulary and the
``current.batch`` view of a job.

Nothing in this package calls AWS or imports a boto3 client; the backend that does lives
in :mod:`batchwright.backends.aws_batch` and feeds these functions their inputs. The
package itself imports nothing, so a module that needs one rule loads only that rule.
"""
