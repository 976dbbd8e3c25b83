// The signed-in user: `GET /api/auth/me` through the query cache (the session itself is the
// HttpOnly cookie the server sets at login; nothing is kept in script-readable storage).
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, get, post } from './api/client';
import type { User } from './api/types';

export const ME = ['me'] as const;

export function useMe() {
  return useQuery({
    queryKey: ME,
    queryFn: async (): Promise<User | null> => {
      try {
        return await get<User>('/api/auth/me');
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) return null;
        throw e;
      }
    },
    staleTime: 60_000,
  });
}

export function useLogin() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: { email: string; password: string }) =>
      // The body's token is ignored on purpose: the cookie carries the session.
      post<{ user: User }>('/api/auth/login', body),
    onSuccess: (r) => {
      qc.clear();
      qc.setQueryData(ME, r.user);
    },
  });
}

export function useLogout() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: () => post<void>('/api/auth/logout'),
    onSettled: () => {
      qc.clear();
      qc.setQueryData(ME, null);
    },
  });
}
