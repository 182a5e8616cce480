tc class del dev g0 classid 1:30
