#!/bin/sh
# /init of the dmahil reference guest (busybox sh as PID 1).
#
# Brings up the first non-lo NIC at 10.0.2.15/24 (QEMU user networking, gateway 10.0.2.2) and
# dropbear on port 22 with the per-run host key; key-only login as root, SFTP through
# /usr/lib/sftp-server. The harness uploads edudma.ko and dmactl over SFTP; they are not in the image.
#
# Console markers the harness waits for, each on a line of its own:
#   dmahil: init start      first thing /init does
#   dmahil: ssh ready       dropbear is listening on port 22
#   dmahil: init error: ... something the guest cannot recover from (no NIC, no host key, no sshd)

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root

echo "dmahil: init start"

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
hostname dmahil
ip link set lo up

# NIC drivers, dependencies first (the list is written by images/linux/build.ts).
while read -r m; do
	[ -n "$m" ] || continue
	insmod "$m" || echo "dmahil: insmod $m failed"
done < /etc/dmahil/modules

# The first interface other than lo; the driver may need a moment to register it.
ifc=
i=0
while [ $i -lt 200 ]; do
	for p in /sys/class/net/*; do
		n=${p##*/}
		if [ "$n" != lo ] && [ -e "$p" ]; then
			ifc=$n
			break
		fi
	done
	[ -n "$ifc" ] && break
	usleep 25000
	i=$((i + 1))
done
if [ -n "$ifc" ]; then
	ip link set "$ifc" up
	ip addr add 10.0.2.15/24 dev "$ifc"
	ip route add default via 10.0.2.2
	echo "dmahil: net $ifc 10.0.2.15/24 via 10.0.2.2"
else
	echo "dmahil: init error: no network interface"
fi

if [ -s /etc/dropbear/hostkey ] && [ -s /root/.ssh/authorized_keys ]; then
	# -s -g: no password logins at all. Restarted if it ever exits.
	(
		while :; do
			dropbear -F -E -s -g -p 22 -r /etc/dropbear/hostkey -P /run/dropbear.pid </dev/null
			echo "dmahil: dropbear exited with status $?; restarting"
			sleep 1
		done
	) >/dev/console 2>&1 &
	i=0
	ready=
	while [ $i -lt 400 ]; do
		if grep -Eq ':0016 [0-9A-F]+:0000 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
			ready=1
			break
		fi
		usleep 10000
		i=$((i + 1))
	done
	if [ -n "$ready" ]; then
		echo "dmahil: ssh ready"
		read -r up _ < /proc/uptime
		echo "dmahil: uptime $up s"
	else
		echo "dmahil: init error: dropbear is not listening on port 22"
	fi
else
	echo "dmahil: init error: no host key or authorized_keys (boot with the per-run initrd from makeRunInitrd)"
fi

# PID 1 must never exit; the shell also reaps orphans while it waits for sleep.
while :; do
	sleep 3600
done
