/* SPDX-License-Identifier: MIT */
/*
 * edudma-model.exe: dmactl (unchanged; its main is dmactl_main) over the model
 * backend, or "model-check <name>" for the sequences dmactl cannot drive.
 */
#include <string.h>

int dmactl_main(int argc, char **argv);
int mk_checks_main(int argc, char **argv);

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "model-check") == 0)
		return mk_checks_main(argc, argv);
	return dmactl_main(argc, argv);
}
