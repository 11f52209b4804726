/*
 * crypto.h
 *		Encryption of provider secrets at rest (see crypto.c).
 */
#ifndef CREFINDER_CRYPTO_H
#define CREFINDER_CRYPTO_H

#define CREFINDER_KEY_BYTES 32

typedef struct CrefinderKey
{
	unsigned char bytes[CREFINDER_KEY_BYTES];
} CrefinderKey;

typedef enum CrefinderDecryptResult
{
	CREFINDER_DECRYPT_OK,
	CREFINDER_DECRYPT_MALFORMED,	/* not an envelope this code wrote */
	CREFINDER_DECRYPT_WRONG_KEY,	/* sealed under another key */
	CREFINDER_DECRYPT_TAMPERED	/* authentication tag did not verify */
} CrefinderDecryptResult;

extern bool crefinder_parse_key(const char *hex, CrefinderKey *key);
extern void crefinder_server_key(CrefinderKey *key);
extern void crefinder_wipe_key(CrefinderKey *key);
extern char *crefinder_encrypt(const CrefinderKey *key, const char *plaintext,
							   const char *aad);
extern CrefinderDecryptResult crefinder_try_decrypt(const CrefinderKey *key,
													const char *envelope,
													const char *aad,
													char **plaintext);
extern char *crefinder_decrypt_secret(const char *envelope, const char *aad);
extern void crefinder_wipe_string(char *s);

#endif							/* CREFINDER_CRYPTO_H */
