tc class replace dev g0 parent 1: classid 1:10 htb rate 60mbit
