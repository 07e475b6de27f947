import { scryptSync } from 'node:crypto';
import { BadRequestException, Injectable, NotFoundException } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import { HistoryTracked } from '../../../src/index.js';
import type { CreateUserDto, UpdateUserDto, UserRO } from './dto.js';
import { UserEntity } from './user.entity.js';

const hash = (password: string): string => scryptSync(password, 'realworld', 32).toString('hex');

@Injectable()
export class UserService {
  constructor(@InjectRepository(UserEntity) private readonly userRepository: Repository<UserEntity>) {}

  async findByUsername(username: string): Promise<UserEntity | null> {
    return this.userRepository.findOneBy({ username });
  }

  @HistoryTracked()
  async create(dto: CreateUserDto): Promise<UserRO> {
    const existing = await this.userRepository.findOneBy({ username: dto.username });
    if (existing)
      throw new BadRequestException({ message: 'Input data validation failed', errors: { username: 'taken' } });
    const user = new UserEntity();
    user.username = dto.username;
    user.email = dto.email;
    user.password = hash(dto.password);
    const saved = await this.userRepository.save(user);
    return this.buildUserRO(saved);
  }

  @HistoryTracked()
  async update(id: number, dto: UpdateUserDto): Promise<UserRO> {
    const toUpdate = await this.userRepository.findOneBy({ id });
    if (!toUpdate) throw new NotFoundException({ message: 'User not found' });
    const changes = dto.password === undefined ? dto : { ...dto, password: hash(dto.password) };
    const updated = Object.assign(toUpdate, changes);
    return this.buildUserRO(await this.userRepository.save(updated));
  }

  private buildUserRO(user: UserEntity): UserRO {
    return { user: { id: user.id, username: user.username, email: user.email, bio: user.bio, version: user.version } };
  }
}
