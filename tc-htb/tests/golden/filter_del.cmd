tc filter del dev g0 parent 1: protocol ip prio 1 u32
