tc class add dev g0 parent 1: classid 1:20 htb rate 1gbit
