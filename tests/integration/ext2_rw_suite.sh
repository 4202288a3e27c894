# A write-heavy workload run by busybox sh in directory $1: natively on the host and in the
# guest on an ext2 image mounted rw; test_ext2_rw.py compares what both leave behind.
set -e
cd "$1"
mkdir -p deep/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t
echo leaf > deep/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/leaf
mkdir many keep
i=0
while [ $i -lt 3000 ]; do echo "file $i" > many/f$i; i=$((i + 1)); done
i=0
while [ $i -lt 400 ]; do echo $i > keep/a-longer-name-to-fill-blocks-$i; i=$((i + 1)); done
i=0
while [ $i -lt 400 ]; do [ $((i % 3)) = 0 ] && rm keep/a-longer-name-to-fill-blocks-$i; i=$((i + 1)); done
rm -r many
echo one > a
echo two > b
mv a c
ln c hard
ln -s c soft
ln -s deep/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/leaf/../../../../../../../../leaf slow
mv b c
seq 1 150000 > big
seq 1 2000 >> big
cp big big2
truncate -s 70000 big2
truncate -s 5000000 big2
echo tail >> big2
dd if=big of=sparse bs=4096 seek=3000 count=2 conv=notrunc 2>/dev/null
dd if=big of=sparse bs=1024 seek=70000 count=3 conv=notrunc 2>/dev/null
dd if=big of=sparse bs=1000 seek=7 count=1 conv=notrunc 2>/dev/null
mkdir -p x/y/z
echo moved > x/y/z/file
mv x/y deep/a/moved-dir
mv keep deep/a/b/keep
mkdir empty
mv empty x/y2
mkdir -p r1/sub r2
mv r1/sub r2/sub
rmdir r1
mkfifo fifo
chmod 600 c
chmod 4755 big
chown 123:456 big2 soft
chown -h 7:8 slow
: > empty-file
touch -c c
cp c deep/copy
rm hard
echo done
