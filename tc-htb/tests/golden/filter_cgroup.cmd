tc filter add dev g0 parent 1: protocol ip prio 4 handle 1: cgroup
