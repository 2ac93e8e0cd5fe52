/* lock.h: the arena's mutex on each platform's own lock, so graph.c needs no POSIX-only header.
 *
 *   POSIX    pthread_mutex_t                      (Linux, macOS, the BSDs)
 *   Windows  SRWLOCK, always taken exclusively    (MSVC, mingw-w64; Windows Vista and later)
 *
 * Both are statically initialised, need no destruction and cost no system call while the lock
 * is free, which is the case the arena lives in (every graph.h call takes it once).  SRWLOCK
 * rather than a CRITICAL_SECTION: the latter needs InitializeCriticalSection() at run time,
 * i.e. an init hook the arena does not otherwise have.
 *
 * The platform picks the branch; defining MG_LOCK_WIN32 or MG_LOCK_PTHREAD forces one (CI
 * cross-compiles the Win32 branch with mingw-w64, whose winpthreads would otherwise be usable
 * too).
 */
#ifndef MICROGRAD_C_LOCK_H
#define MICROGRAD_C_LOCK_H

#if defined(MG_LOCK_WIN32) && defined(MG_LOCK_PTHREAD)
#error "define at most one of MG_LOCK_WIN32 and MG_LOCK_PTHREAD"
#elif !defined(MG_LOCK_WIN32) && !defined(MG_LOCK_PTHREAD)
#ifdef _WIN32
#define MG_LOCK_WIN32
#else
#define MG_LOCK_PTHREAD
#endif
#endif

#ifdef MG_LOCK_WIN32

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN /* the lock needs synchapi.h alone, not all of windows.h */
#endif
#include <windows.h>

typedef SRWLOCK mg_lock;
#define MG_LOCK_INIT SRWLOCK_INIT

static inline void mg_lock_acquire(mg_lock *lock) { AcquireSRWLockExclusive(lock); }
static inline void mg_lock_release(mg_lock *lock) { ReleaseSRWLockExclusive(lock); }

#else /* MG_LOCK_PTHREAD */

#include <pthread.h>

typedef pthread_mutex_t mg_lock;
#define MG_LOCK_INIT PTHREAD_MUTEX_INITIALIZER

/* A default mutex fails only on misuse (unlocking a lock not held, relocking it in the same
 * thread), which the LOCKED pattern in graph.c rules out; so the codes are not checked. */
static inline void mg_lock_acquire(mg_lock *lock) { pthread_mutex_lock(lock); }
static inline void mg_lock_release(mg_lock *lock) { pthread_mutex_unlock(lock); }

#endif

#endif /* MICROGRAD_C_LOCK_H */
