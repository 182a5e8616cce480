tc filter add dev g0 parent 1: protocol all prio 5 matchall classid 1:20
