/* SPDX-License-Identifier: MIT */
/*
 * edudma-model.exe: dmactl (unchanged; its main is dmactl_main) over the model
 * backend, or "model-check <name>" for the sequences dmactl cannot drive.
 */
#include <stdlib.h>
#include <string.h>
#include "os.h"

int dmactl_main(int argc, char **argv);
int mk_checks_main(int argc, char **argv);

/*
 * The last line on stderr: Wine's helper processes inherit the first model's
 * stderr and keep it open, so the host cannot wait for its end to know that
 * an unload's bug check has been read. os_exit prints it too.
 */
static void say_exiting(void)
{
	os_stderr(OS_EXIT_MARK);
}

int main(int argc, char **argv)
{
	atexit(say_exiting);
	if (argc >= 2 && strcmp(argv[1], "model-check") == 0)
		return mk_checks_main(argc, argv);
	return dmactl_main(argc, argv);
}
