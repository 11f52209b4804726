/*
 * crypto.c
 *		Authenticated encryption of provider secrets (AES-256-GCM).
 *
 * A secret is stored as an envelope: the text "v1:" followed by the base64
 * of key-id (4 bytes) | nonce (12 bytes) | ciphertext | tag (16 bytes).
 * The key-id is a digest of the key, so a secret sealed under another key
 * is told apart from a damaged one.  The nonce is fresh random bytes for
 * every encryption.  The caller's associated data (AAD) binds an envelope
 * to its place (tenant, provider, field): copied elsewhere it no longer
 * decrypts.
 *
 * The key is 64 hexadecimal characters, held in the file named by
 * crefinder.secret_key_file or in crefinder.secret_key itself.  No
 * function here puts a key or a plaintext into an error message, and
 * plaintext buffers are wiped when done with.
 */
#include "postgres.h"

#include <ctype.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/base64.h"
#include "storage/fd.h"

#include "crypto.h"
#include "guc.h"

#define ENVELOPE_PREFIX "v1:"
#define KEY_ID_BYTES 4
#define NONCE_BYTES 12
#define TAG_BYTES 16
#define HEADER_BYTES (KEY_ID_BYTES + NONCE_BYTES)

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * crefinder_parse_key turns 64 hexadecimal characters into a key; false
 * when hex is anything else.
 */
bool
crefinder_parse_key(const char *hex, CrefinderKey *key)
{
	if (hex == NULL || strlen(hex) != 2 * CREFINDER_KEY_BYTES)
		return false;
	for (int i = 0; i < CREFINDER_KEY_BYTES; i++)
	{
		int			hi = hex_value(hex[2 * i]);
		int			lo = hex_value(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
		{
			crefinder_wipe_key(key);
			return false;
		}
		key->bytes[i] = (unsigned char) (hi << 4 | lo);
	}
	return true;
}

/*
 * ReadKeyFile reads the hexadecimal key held in path into buf (at most
 * buflen - 1 characters, surrounding white space dropped).  The file must
 * not be readable by others.
 */
static void
ReadKeyFile(const char *path, char *buf, size_t buflen)
{
	FILE	   *file;
	struct stat st;
	size_t		len;
	char	   *start = buf;

	file = AllocateFile(path, "r");
	if (file == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open crefinder.secret_key_file \"%s\": %m", path)));
	if (fstat(fileno(file), &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat crefinder.secret_key_file \"%s\": %m", path)));
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) & ~(S_IRGRP))
	{
		FreeFile(file);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("crefinder.secret_key_file \"%s\" is accessible to other users", path),
				 errhint("Make it readable only by the server's user: chmod 600.")));
	}
	len = fread(buf, 1, buflen - 1, file);
	FreeFile(file);
	buf[len] = '\0';
	while (len > 0 && isspace((unsigned char) buf[len - 1]))
		buf[--len] = '\0';
	while (isspace((unsigned char) *start))
		start++;
	if (start != buf)
		memmove(buf, start, strlen(start) + 1);
}

/*
 * crefinder_server_key loads the server's key: from crefinder.secret_key_file
 * when that is set, else from crefinder.secret_key.  Raises an error that
 * says how to set one, never showing a value.
 */
void
crefinder_server_key(CrefinderKey *key)
{
	char		file_key[2 * CREFINDER_KEY_BYTES + 8];
	const char *hex = crefinder_secret_key;
	bool		ok;

	if (crefinder_secret_key_file != NULL && crefinder_secret_key_file[0] != '\0')
	{
		ReadKeyFile(crefinder_secret_key_file, file_key, sizeof(file_key));
		hex = file_key;
	}
	else if (hex == NULL || hex[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("crefinder.secret_key is not set"),
				 errdetail("Provider secrets are encrypted at rest and need a key."),
				 errhint("Put 64 hexadecimal characters (for example the output of \"openssl rand -hex 32\") in a file readable only by the server and name it in crefinder.secret_key_file, or set crefinder.secret_key; then reload the configuration.")));

	ok = crefinder_parse_key(hex, key);
	OPENSSL_cleanse(file_key, sizeof(file_key));
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s is not a valid key",
						hex == crefinder_secret_key ? "crefinder.secret_key" : "crefinder.secret_key_file"),
				 errdetail("The key must be exactly 64 hexadecimal characters (256 bits)."),
				 errhint("Generate one with \"openssl rand -hex 32\".")));
}

void
crefinder_wipe_key(CrefinderKey *key)
{
	OPENSSL_cleanse(key->bytes, sizeof(key->bytes));
}

void
crefinder_wipe_string(char *s)
{
	if (s != NULL)
		OPENSSL_cleanse(s, strlen(s));
}

/* key_id derives the 4-byte key identifier stored in every envelope. */
static void
key_id(const CrefinderKey *key, unsigned char *id)
{
	static const char label[] = "crefinder secret key id";
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL ||
		EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
		EVP_DigestUpdate(ctx, label, sizeof(label) - 1) != 1 ||
		EVP_DigestUpdate(ctx, key->bytes, sizeof(key->bytes)) != 1 ||
		EVP_DigestFinal_ex(ctx, digest, &digest_len) != 1)
	{
		EVP_MD_CTX_free(ctx);
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute the crefinder key id")));
	}
	EVP_MD_CTX_free(ctx);
	memcpy(id, digest, KEY_ID_BYTES);
}

static void
crypto_failure(EVP_CIPHER_CTX *ctx, const char *what)
{
	EVP_CIPHER_CTX_free(ctx);
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("could not %s a crefinder secret", what)));
}

/*
 * crefinder_encrypt seals plaintext under key, bound to aad, and returns
 * the palloc'd envelope text.
 */
char *
crefinder_encrypt(const CrefinderKey *key, const char *plaintext, const char *aad)
{
	int			plain_len = strlen(plaintext);
	int			raw_len = HEADER_BYTES + plain_len + TAG_BYTES;
	unsigned char *raw = palloc(raw_len);
	unsigned char *nonce = raw + KEY_ID_BYTES;
	unsigned char *cipher = raw + HEADER_BYTES;
	unsigned char *tag = cipher + plain_len;
	EVP_CIPHER_CTX *ctx;
	int			len;
	int			b64_len;
	char	   *envelope;

	key_id(key, raw);
	if (RAND_bytes(nonce, NONCE_BYTES) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random nonce")));

	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL)
		crypto_failure(ctx, "encrypt");
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_BYTES, NULL) != 1 ||
		EVP_EncryptInit_ex(ctx, NULL, NULL, key->bytes, nonce) != 1 ||
		EVP_EncryptUpdate(ctx, NULL, &len, (const unsigned char *) aad, strlen(aad)) != 1 ||
		EVP_EncryptUpdate(ctx, cipher, &len, (const unsigned char *) plaintext, plain_len) != 1 ||
		EVP_EncryptFinal_ex(ctx, cipher + len, &len) != 1 ||
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, tag) != 1)
		crypto_failure(ctx, "encrypt");
	EVP_CIPHER_CTX_free(ctx);

	b64_len = pg_b64_enc_len(raw_len);
	envelope = palloc(strlen(ENVELOPE_PREFIX) + b64_len + 1);
	strcpy(envelope, ENVELOPE_PREFIX);
	b64_len = pg_b64_encode((const char *) raw, raw_len,
							envelope + strlen(ENVELOPE_PREFIX), b64_len);
	if (b64_len < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not encode a crefinder secret")));
	envelope[strlen(ENVELOPE_PREFIX) + b64_len] = '\0';
	pfree(raw);
	return envelope;
}

/*
 * crefinder_try_decrypt opens an envelope with key and aad.  On success it
 * sets *plaintext to a palloc'd string (wipe it after use); otherwise it
 * says why not and raises no error.
 */
CrefinderDecryptResult
crefinder_try_decrypt(const CrefinderKey *key, const char *envelope,
					  const char *aad, char **plaintext)
{
	size_t		prefix_len = strlen(ENVELOPE_PREFIX);
	const char *b64;
	int			b64_len;
	unsigned char *raw;
	int			raw_len;
	int			cipher_len;
	unsigned char expected_id[KEY_ID_BYTES];
	unsigned char *out;
	EVP_CIPHER_CTX *ctx;
	int			len;
	int			ok;

	*plaintext = NULL;
	if (envelope == NULL || strncmp(envelope, ENVELOPE_PREFIX, prefix_len) != 0)
		return CREFINDER_DECRYPT_MALFORMED;
	b64 = envelope + prefix_len;
	b64_len = strlen(b64);
	raw = palloc(pg_b64_dec_len(b64_len) + 1);
	raw_len = pg_b64_decode(b64, b64_len, (char *) raw, pg_b64_dec_len(b64_len));
	if (raw_len < HEADER_BYTES + TAG_BYTES)
	{
		pfree(raw);
		return CREFINDER_DECRYPT_MALFORMED;
	}

	key_id(key, expected_id);
	if (CRYPTO_memcmp(expected_id, raw, KEY_ID_BYTES) != 0)
	{
		pfree(raw);
		return CREFINDER_DECRYPT_WRONG_KEY;
	}

	cipher_len = raw_len - HEADER_BYTES - TAG_BYTES;
	out = palloc(cipher_len + 1);
	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL)
		crypto_failure(ctx, "decrypt");
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_BYTES, NULL) != 1 ||
		EVP_DecryptInit_ex(ctx, NULL, NULL, key->bytes, raw + KEY_ID_BYTES) != 1 ||
		EVP_DecryptUpdate(ctx, NULL, &len, (const unsigned char *) aad, strlen(aad)) != 1 ||
		EVP_DecryptUpdate(ctx, out, &len, raw + HEADER_BYTES, cipher_len) != 1 ||
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_BYTES,
							raw + HEADER_BYTES + cipher_len) != 1)
		crypto_failure(ctx, "decrypt");
	ok = EVP_DecryptFinal_ex(ctx, out + len, &len);
	EVP_CIPHER_CTX_free(ctx);
	pfree(raw);

	if (ok != 1)
	{
		OPENSSL_cleanse(out, cipher_len);
		pfree(out);
		return CREFINDER_DECRYPT_TAMPERED;
	}
	out[cipher_len] = '\0';
	*plaintext = (char *) out;
	return CREFINDER_DECRYPT_OK;
}

/*
 * crefinder_decrypt_secret opens an envelope with crefinder.secret_key: the
 * entry point for code that needs a provider secret (the dispatcher, the
 * HTTP helpers).  Raises an error, naming no secret, when it cannot.
 */
char *
crefinder_decrypt_secret(const char *envelope, const char *aad)
{
	CrefinderKey key;
	char	   *plaintext;
	CrefinderDecryptResult result;

	crefinder_server_key(&key);
	result = crefinder_try_decrypt(&key, envelope, aad, &plaintext);
	crefinder_wipe_key(&key);

	switch (result)
	{
		case CREFINDER_DECRYPT_OK:
			break;
		case CREFINDER_DECRYPT_WRONG_KEY:
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("stored provider secret was encrypted under a different crefinder.secret_key"),
					 errhint("Restore the key the secret was stored with, or move secrets to a new key with crefinder.rotate_secret_key().")));
			break;
		case CREFINDER_DECRYPT_MALFORMED:
		case CREFINDER_DECRYPT_TAMPERED:
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("stored provider secret is damaged"),
					 errdetail("Its authentication tag does not verify."),
					 errhint("Configure the provider again with crefinder.configure().")));
			break;
	}
	return plaintext;
}
