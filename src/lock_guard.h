/*
 * lock_guard.h
 *		Keeps explicit table locks on crefinder's tables to their owner
 *		(see lock_guard.c).
 */
#ifndef CREFINDER_LOCK_GUARD_H
#define CREFINDER_LOCK_GUARD_H

extern void crefinder_install_lock_guard(void);

#endif							/* CREFINDER_LOCK_GUARD_H */
