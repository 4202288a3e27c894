#!/bin/sh
# Runs busybox applets over the tree in $1 and prints deterministic results.
# The same script runs natively (host busybox) and in the guest; outputs must match.
set -e
BB=${BB:-busybox}
W=$1
cd "$W"
$BB mkdir -p in/a/b in/c
i=0
while [ $i -lt 200 ]; do echo "line $i $((i * 7 % 13))" >> in/a/data.txt; i=$((i + 1)); done
$BB seq 1 50 | $BB sed 's/^/n/' > in/c/nums
$BB printf 'zeta\nalpha\nmu\nbeta\n' > in/a/b/words
echo "== sort"; $BB sort -k3 -n in/a/data.txt | $BB head -5; $BB sort -r in/a/b/words
echo "== sed"; $BB sed -n '/line 1[0-9]$/p; s/line/L/' in/a/data.txt | $BB head -3
echo "== awk"; $BB awk '{ s += $3 } END { print NR, s }' in/a/data.txt
echo "== grep"; $BB grep -c ' 0$' in/a/data.txt; $BB grep -rl alpha in | $BB sort
echo "== find"; $BB find in -type f | $BB sort; $BB find in -name '*.txt' -size +1k
echo "== xargs"; $BB find in -type f | $BB sort | $BB xargs $BB wc -l
echo "== tar+gzip"; $BB tar -cf t.tar in; $BB gzip -9 t.tar; $BB gzip -dc t.tar.gz | $BB tar -tf - | $BB sort
$BB mkdir out; (cd out && $BB tar -xzf ../t.tar.gz); $BB diff -r in out/in && echo same
echo "== cp -a mv ln chmod"
$BB cp -a in copy; $BB mv copy/c copy/moved; $BB ln -s ../a/data.txt copy/moved/link
$BB ln copy/a/b/words copy/hard; $BB chmod 640 copy/hard; $BB chmod -R go-rwx copy/a
$BB ls -ln copy copy/a copy/moved | $BB awk '{ print $1, $2, $5, $NF }'
$BB readlink copy/moved/link; $BB cat copy/moved/link | $BB wc -l
echo "== du"; $BB du -s -k in/c; $BB du -a in | $BB awk '{ print $2 }' | $BB sort
echo "== stat"; $BB stat -c '%n %s %a %h' in/a/data.txt copy/hard
echo "== date"; $BB date -u -d @86400 '+%Y-%m-%d %H:%M:%S'
echo "== kill"; ($BB sleep 10 & p=$!; $BB kill -TERM $p; wait $p || echo "status $?") 2>&1 | $BB grep -v Terminated
echo "== md5"; $BB md5sum in/a/data.txt in/c/nums
echo "== rm"; $BB rm -r copy out; $BB ls
