"""What the backends that run bootstrap.sh on machines they watch themselves share: the ssh
transport that reaches those machines (`transport`) and the rules that make one job state out
of its nodes' exit codes and logs (`nodes`). Used by ssh, lambda_cloud and local; not a backend.
"""
