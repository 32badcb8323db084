/* replay_main.c: runs a libFuzzer target without libFuzzer, over saved inputs, so `make test`
 * replays each fuzz corpus with the normal compiler. Arguments: files or folders (not recursive).
 * Prints how many inputs ran; exit 0, or 1 if an argument or file could not be read. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads one file and hands it to the target; 0, or -1 if it cannot be read. */
static int run_file(const char *path)
{
	FILE *f;
	uint8_t *data = NULL;
	size_t cap = 0, len = 0, n;
	int r = -1;

	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "replay: cannot open %s\n", path);
		return -1;
	}
	for (;;) {
		if (len == cap) {
			size_t ncap = cap ? 2 * cap : 4096;
			uint8_t *p = realloc(data, ncap);

			if (p == NULL)
				goto out;
			data = p;
			cap = ncap;
		}
		n = fread(data + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		fprintf(stderr, "replay: cannot read %s\n", path);
		goto out;
	}
	/* A copy of exactly len bytes, so that ASan sees any read past the input's end. */
	{
		uint8_t *exact = malloc(len > 0 ? len : 1);

		if (exact == NULL)
			goto out;
		if (len > 0)
			memcpy(exact, data, len);
		LLVMFuzzerTestOneInput(exact, len);
		free(exact);
	}
	r = 0;
out:
	free(data);
	fclose(f);
	return r;
}

int main(int argc, char **argv)
{
	unsigned long ran = 0;
	int i, bad = 0;

	for (i = 1; i < argc; i++) {
		struct stat st;
		DIR *d;
		struct dirent *de;

		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: cannot find %s\n", argv[i]);
			bad = 1;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i]) == 0)
				ran++;
			else
				bad = 1;
			continue;
		}
		if ((d = opendir(argv[i])) == NULL) {
			fprintf(stderr, "replay: cannot open folder %s\n", argv[i]);
			bad = 1;
			continue;
		}
		while ((de = readdir(d)) != NULL) {
			char path[4096];
			struct stat fst;

			if (de->d_name[0] == '.')
				continue;
			if ((size_t)snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name) >=
			    sizeof(path))
				continue;
			if (stat(path, &fst) != 0 || !S_ISREG(fst.st_mode))
				continue;
			if (run_file(path) == 0)
				ran++;
			else
				bad = 1;
		}
		closedir(d);
	}
	printf("replay: %lu inputs ran\n", ran);
	return bad;
}
