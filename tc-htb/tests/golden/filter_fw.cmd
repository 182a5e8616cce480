tc filter add dev g0 parent 1: protocol ip prio 3 handle 6 fw flowid 1:10
