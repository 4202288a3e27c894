#!/bin/sh
# Busybox tools over a tree of 2,000 small files: shell loops, fork+exec of short-lived
# tools, path walks, directory reads, small reads and writes. Prints checksums that must
# be the same on every system.
set -e
d=/bench-work/tree
rm -rf /bench-work
mkdir -p $d
i=0
while [ $i -lt 20 ]; do
    mkdir $d/d$i
    j=0
    while [ $j -lt 100 ]; do
        echo "line $i $j" > $d/d$i/f$j
        j=$((j + 1))
    done
    i=$((i + 1))
done
echo "files $(find $d -type f | wc -l)"
echo "grep $(grep -rl 'line 1' $d | wc -l)"
echo "lines $(find $d -name 'f1*' | xargs cat | wc -l)"
echo "sums $(cd $d && find . -type f | sort | xargs md5sum | md5sum)"
echo "tar $(tar cf - -C $d . | wc -c)"
cp -r $d $d.copy
echo "listing $(ls -R $d.copy | wc -l)"
rm -r /bench-work
