import { createContext, type ReactNode, useContext, useMemo } from 'react';
import { type Formatter, makeFormatter } from './format.ts';
import type { Me } from './types.ts';

interface Session {
  me: Me;
  fmt: Formatter;
}

const SessionContext = createContext<Session | null>(null);

export function SessionProvider({ me, children }: { me: Me; children: ReactNode }) {
  const value = useMemo(
    () => ({
      me,
      fmt: makeFormatter({
        locale: me.user.locale || navigator.language,
        timeZone: me.user.timeZone || me.org.timeZone || 'UTC',
        currency: me.org.currency || 'USD',
      }),
    }),
    [me],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside SessionProvider');
  return s;
}

/** The signed-in user, org and profile. */
export const useMe = () => useSession().me;
/** Formatting in the user's locale and time zone. */
export const useFmt = () => useSession().fmt;
export const useIsAdmin = () => useSession().me.profile.isAdmin;
