/*
 * kbus_abi.h: a minimal, self-written description of the KBUS device ABI
 * (x86-64 / LP64), for the tests of busbar's /dev/kbusN emulation.
 *
 * Written from KBUS's documented ABI (the message layout, and open, write,
 * read and the ioctls; docs/kbus.md in this repository says what busbar
 * emulates), not copied from KBUS's own header.
 */
#ifndef BUSBAR_TEST_KBUS_ABI_H
#define BUSBAR_TEST_KBUS_ABI_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Guards: "Kbus" and "subK" as little-endian bytes. */
#define KB_START_GUARD 0x7375624Bu
#define KB_END_GUARD 0x4B627573u

/* The longest message name. */
#define KB_MAX_NAME_LEN 1000u

/* Flag bits (16..31 belong to the user). */
#define KB_WANT_A_REPLY 0x1u
#define KB_WANT_YOU_TO_REPLY 0x2u
#define KB_SYNTHETIC 0x4u
#define KB_URGENT 0x8u
#define KB_ALL_OR_WAIT 0x100u
#define KB_ALL_OR_FAIL 0x200u

/* A message id: {network_id, serial_num}. */
struct kb_msg_id {
	uint32_t network_id;
	uint32_t serial_num;
};

/* {network_id, local_id}, for orig_from and final_to. */
struct kb_orig_from {
	uint32_t network_id;
	uint32_t local_id;
};

/*
 * The message header, 88 bytes on 64-bit. The offsets are asserted below;
 * the 4 bytes before `name` and after `end_guard` are alignment padding.
 */
struct kb_header {
	uint32_t start_guard;          /*  0 */
	struct kb_msg_id id;           /*  4 */
	struct kb_msg_id in_reply_to;  /* 12 */
	uint32_t to;                   /* 20 */
	uint32_t from;                 /* 24 */
	struct kb_orig_from orig_from; /* 28 */
	struct kb_orig_from final_to;  /* 36 */
	uint32_t extra;                /* 44 */
	uint32_t flags;                /* 48 */
	uint32_t name_len;             /* 52 */
	uint32_t data_len;             /* 56 */
	char *name;                    /* 64 (pointy form), else NULL */
	void *data;                    /* 72 (pointy form), else NULL */
	uint32_t end_guard;            /* 80 */
};

_Static_assert(sizeof(struct kb_header) == 88, "header is 88 bytes on 64-bit");
_Static_assert(offsetof(struct kb_header, in_reply_to) == 12, "in_reply_to");
_Static_assert(offsetof(struct kb_header, to) == 20, "to");
_Static_assert(offsetof(struct kb_header, orig_from) == 28, "orig_from");
_Static_assert(offsetof(struct kb_header, final_to) == 36, "final_to");
_Static_assert(offsetof(struct kb_header, flags) == 48, "flags");
_Static_assert(offsetof(struct kb_header, name_len) == 52, "name_len");
_Static_assert(offsetof(struct kb_header, name) == 64, "name");
_Static_assert(offsetof(struct kb_header, data) == 72, "data");
_Static_assert(offsetof(struct kb_header, end_guard) == 80, "end_guard");

/* BIND / UNBIND argument, and REPLIER (first field is then return_id). */
struct kb_bind {
	uint32_t is_replier; /* REPLIER: out, the replier's Ksock id */
	uint32_t name_len;
	const char *name;
};
_Static_assert(sizeof(struct kb_bind) == 16, "bind request is 16 bytes");

/* Data of a $.KBUS.ReplierBindEvent: this, then the name padded to 4. */
struct kb_bind_event {
	uint32_t is_bind;
	uint32_t binder;
	uint32_t name_len;
};

/* ioctl numbers: magic 'k', size field sizeof(char *) (x86-64 values). */
#define KB_IOC_RESET 0x6b01u
#define KB_IOC_BIND 0x40086b02u
#define KB_IOC_UNBIND 0x40086b03u
#define KB_IOC_KSOCKID 0x80086b04u
#define KB_IOC_REPLIER 0xc0086b05u
#define KB_IOC_NEXTMSG 0x80086b06u
#define KB_IOC_LENLEFT 0x80086b07u
#define KB_IOC_SEND 0x80086b08u
#define KB_IOC_DISCARD 0x6b09u
#define KB_IOC_LASTSENT 0x80086b0au
#define KB_IOC_MAXMSGS 0xc0086b0bu
#define KB_IOC_NUMMSGS 0x80086b0cu
#define KB_IOC_UNREPLIEDTO 0x80086b0du
#define KB_IOC_MSGONLYONCE 0xc0086b0eu
#define KB_IOC_VERBOSE 0xc0086b0fu
#define KB_IOC_NEWDEVICE 0x80086b10u
#define KB_IOC_REPORTREPLIERBINDS 0xc0086b11u
#define KB_IOC_MAXMSGSIZE 0xc0086b12u

/* Padded lengths of the entire form. */
static inline size_t kb_padded_name_len(size_t n) { return (n + 1 + 3) / 4 * 4; }
static inline size_t kb_padded_data_len(size_t d) { return (d + 3) / 4 * 4; }
static inline size_t kb_entire_len(size_t n, size_t d)
{
	return sizeof(struct kb_header) + kb_padded_name_len(n) + kb_padded_data_len(d) + 4;
}

/* A header with guards and lengths set, everything else zero. */
static inline struct kb_header kb_header_for(size_t name_len, size_t data_len, uint32_t flags)
{
	struct kb_header h;
	memset(&h, 0, sizeof h);
	h.start_guard = KB_START_GUARD;
	h.end_guard = KB_END_GUARD;
	h.name_len = (uint32_t)name_len;
	h.data_len = (uint32_t)data_len;
	h.flags = flags;
	return h;
}

/*
 * Builds an entire-form message (header `h` with both pointers NULL, then
 * the padded name, the padded data and the final guard) into `buf`, which
 * must hold kb_entire_len(h->name_len, h->data_len) bytes. Returns that
 * length.
 */
static inline size_t kb_build_entire(void *buf, const struct kb_header *h, const char *name,
				     const void *data)
{
	unsigned char *p = buf;
	size_t n = h->name_len, d = h->data_len, len = kb_entire_len(n, d);
	struct kb_header copy = *h;
	uint32_t guard = KB_END_GUARD;

	copy.name = NULL;
	copy.data = NULL;
	memset(p, 0, len);
	memcpy(p, &copy, sizeof copy);
	p += sizeof copy;
	memcpy(p, name, n);
	p += kb_padded_name_len(n);
	if (d > 0 && data != NULL)
		memcpy(p, data, d);
	p += kb_padded_data_len(d);
	memcpy(p, &guard, 4);
	return len;
}

/* Where the name and data of an entire-form message start. */
static inline const char *kb_entire_name(const void *msg)
{
	return (const char *)msg + sizeof(struct kb_header);
}
static inline const unsigned char *kb_entire_data(const void *msg)
{
	uint32_t name_len;
	memcpy(&name_len, (const char *)msg + offsetof(struct kb_header, name_len), 4);
	return (const unsigned char *)msg + sizeof(struct kb_header) +
	       kb_padded_name_len(name_len);
}

#endif
